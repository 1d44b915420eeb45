from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.actions.schemas import ActionList
from app.names import Name
from app.selection import spec as s


class RuleIn(BaseModel):
    """A rule: a stored action list, with an optional condition, that the `run_rule` action
    runs on a job's selection."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Welcome VIP",
                    "condition": {"field": "email_opt_in", "op": "eq", "value": True},
                    "actions": [
                        {"type": "add_tags", "tags": ["welcomed"]},
                        {"type": "set_score", "mode": "add", "value": 5},
                    ],
                }
            ]
        },
    )
    name: Name = Field(
        description="Unique in the account, ignoring case; leading and trailing white space "
        "is dropped."
    )
    condition: s.Condition | None = Field(
        None,
        description="A condition, as in a selection's `filter`; `run_rule` with "
        "`check_condition` acts only on the contacts that satisfy it. Null: none.",
    )
    actions: ActionList = Field(
        description="1 to 100 actions, run in order; each must be valid now (a rule, funnel "
        "or stage it names must exist), and a rule may not run itself, directly or through "
        "others."
    )

    @model_validator(mode="before")
    @classmethod
    def _limits(cls, data: Any) -> Any:
        # The same depth and node limits as a selection's filter, on the raw JSON.
        if isinstance(data, dict) and "condition" in data:
            s.check_size(data["condition"], "condition")
        return data


class Rule(BaseModel):
    """A rule of the account."""

    id: int = Field(description="The rule's id, for `run_rule`.")
    name: str = Field(description="Its name, as last given.")
    condition: dict | None = Field(
        description="The stored condition (the keys that were sent); null: none."
    )
    actions: list[dict] = Field(
        description="The stored actions, in order, each with all its parameters (defaults "
        "filled in)."
    )
    created_at: datetime = Field(description="When it was created.")
    updated_at: datetime = Field(description="When it was last changed.")
