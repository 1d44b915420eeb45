from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.actions.schemas import ActionList
from app.jobs.state import Status
from app.selection.spec import Selection
from app.types import UTCDatetime, integer, text

# The API's type of a status: the enum's values, as a plain string enum in OpenAPI.
JobStatus = Literal[tuple(s.value for s in Status)]  # type: ignore[valid-type]


class JobIn(BaseModel):
    """A job to run: actions, in order, on a snapshot of a selection taken when it starts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]},
                    "actions": [
                        {"type": "add_tags", "tags": ["black-friday"]},
                        {"type": "set_score", "mode": "add", "value": 10},
                    ],
                    "expected_total": 1234,
                }
            ]
        },
    )
    selection: Selection = Field(
        description="Which contacts; required: `{}` selects every contact, and says so"
    )
    actions: ActionList = Field(description="The actions, applied in this order")
    run_at: UTCDatetime | None = Field(
        None, description="Start no earlier than this (UTC); absent: as soon as possible"
    )
    expected_total: integer(ge=0) | None = Field(
        None,
        description="The count the user saw: if the selection counts otherwise at submit, "
        "409 with the actual `total` and nothing runs",
    )
    name: text(255) | None = Field(None, description="A name for people, shown with the job")


class ActionProgress(BaseModel):
    """An action as submitted (its type and parameters) and the contacts it changed."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="The action's type (its parameters follow, as submitted)")
    affected: int = Field(
        description="Contacts it changed (or would change, in a dry run); codes and links: "
        "contacts given one"
    )


JobKind = Literal["actions", "import", "revert"]


class Job(BaseModel):
    """A job: what it does, how far it got, and what it changed."""

    id: int = Field(description="The job's id")
    kind: JobKind = Field(
        "actions", description="actions (POST /v1/jobs), import (a CSV) or revert (an undo)"
    )
    name: str | None = Field(None, description="The name given at submit")
    status: JobStatus = Field(
        description="queued → running → succeeded, failed or cancelled (a job that was "
        "never started can go straight to cancelled)"
    )
    total: int | None = Field(
        description="Contacts in its snapshot (an import: rows); null until it starts"
    )
    processed: int = Field(description="Contacts (rows) done so far; only grows")
    actions: list[ActionProgress] = Field(description="Each action with what it changed")
    error: str | None = Field(
        description="Why a failed job stopped, for people: the problem when it is one to "
        "fix (a rule deleted since submit), else a generic message"
    )
    error_code: str | None = Field(
        None,
        description="Why a failed job stopped, for programs: a stable code "
        "(`internal_error` when the service is at fault; its log has the detail)",
    )
    selection: dict | None = Field(None, description="The selection as submitted")
    created_by: str | None = Field(None, description="The label of the API key that submitted it")
    reverts: int | None = Field(None, description="A revert: the job it undoes")
    reverted_by: int | None = Field(None, description="The job that reverts this one")
    conflicts: int | None = Field(
        None,
        description="A revert: changes left alone because something changed them since "
        "(listed by GET /v1/jobs/{id}/output)",
    )
    created: int | None = Field(None, description="An import: contacts it created")
    updated: int | None = Field(None, description="An import: existing contacts its rows named")
    rejected: int | None = Field(
        None, description="An import: rows rejected (GET /v1/jobs/{id}/errors says why)"
    )
    unmapped_columns: list[str] | None = Field(
        None, description="An import: columns of the file that map to nothing (skipped)"
    )
    created_at: UTCDatetime = Field(description="When it was submitted (UTC)")
    started_at: UTCDatetime | None = Field(description="When it first started (UTC)")
    finished_at: UTCDatetime | None = Field(description="When it ended (UTC)")
    run_at: UTCDatetime | None = Field(None, description="Not before this time, if scheduled")
    cancel_requested: bool = Field(
        False, description="A cancel was asked for; a running job stops between chunks"
    )
    attempts: int = Field(
        0, description="Times a worker took it up (more than 1: one died, another resumed)"
    )


class JobPage(BaseModel):
    """The account's jobs, newest first, a page at a time."""

    jobs: list[Job] = Field(description="Jobs, newest first")
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )


class DryRun(BaseModel):
    """What a job would do, counted on today's data; nothing ran."""

    total: int = Field(description="Contacts the selection selects now")
    actions: list[ActionProgress] = Field(
        description="Each action with the contacts it would change if it ran alone"
    )


class RevertDryRun(DryRun):
    """What a revert would give back; nothing ran."""

    conflicts: int = Field(description="Changes a revert would leave alone (changed since)")


class Change(BaseModel):
    """One recorded change to a contact."""

    job_id: int = Field(description="The job that made it")
    kind: JobKind = Field(description="That job's kind")
    action: str = Field(description="The action that made it (`import` for an import)")
    field: str = Field(
        description="What changed: a contact field, `KIND:NAME` for a tag, group, owner, "
        "funnel, detail or coupon (`tag:VIP`, `funnel:Sales`), or `link`"
    )
    before: str | bool | int | None = Field(description="The value before (null: none)")
    after: str | bool | int | None = Field(description="The value the job left (null: none)")
    at: UTCDatetime = Field(description="When the change was made (UTC)")
    created_by: str | None = Field(description="The label of the key that submitted the job")


class History(BaseModel):
    """A contact's recorded changes, newest first, a page at a time."""

    changes: list[Change] = Field(description="Changes, newest first")
    next_before: str | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )
