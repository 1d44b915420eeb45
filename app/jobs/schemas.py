from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.actions.schemas import ActionList
from app.jobs.state import Status
from app.selection.spec import Selection
from app.types import UTCDatetime, integer, text

# The API's type of a status: the enum's values, as a plain string enum in OpenAPI.
JobStatus = Literal[tuple(s.value for s in Status)]  # type: ignore[valid-type]


class JobIn(BaseModel):
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
    actions: ActionList
    run_at: UTCDatetime | None = None
    expected_total: integer(ge=0) | None = None
    name: text(255) | None = Field(None, description="A name for people, shown with the job")


class ActionProgress(BaseModel):
    """An action as submitted (its type and parameters) and the contacts it changed."""

    model_config = ConfigDict(extra="allow")
    type: str
    affected: int


JobKind = Literal["actions", "import", "revert"]


class Job(BaseModel):
    id: int
    kind: JobKind = "actions"
    name: str | None = None
    status: JobStatus
    total: int | None
    processed: int
    actions: list[ActionProgress]
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
    created_at: UTCDatetime
    started_at: UTCDatetime | None
    finished_at: UTCDatetime | None
    run_at: UTCDatetime | None = None
    cancel_requested: bool = False
    attempts: int = 0


class JobPage(BaseModel):
    jobs: list[Job]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )


class DryRun(BaseModel):
    total: int
    actions: list[ActionProgress]


class RevertDryRun(DryRun):
    conflicts: int = Field(description="Changes a revert would leave alone (changed since)")


class Change(BaseModel):
    """One recorded change to a contact."""

    job_id: int
    kind: JobKind
    action: str
    field: str
    before: str | bool | int | None
    after: str | bool | int | None
    at: UTCDatetime
    created_by: str | None


class History(BaseModel):
    changes: list[Change]
    next_before: str | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )
