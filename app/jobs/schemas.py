from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.actions.schemas import ActionList
from app.jobs.state import Status
from app.selection.spec import Selection
from app.types import UTCDatetime, integer

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
    selection: Selection = Field(default_factory=Selection)
    actions: ActionList
    run_at: UTCDatetime | None = None
    expected_total: integer(ge=0) | None = None


class ActionProgress(BaseModel):
    type: str
    affected: int


class Job(BaseModel):
    id: int
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
