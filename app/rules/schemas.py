from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from app.actions.schemas import ActionList
from app.names import Name
from app.selection import spec as s


class RuleIn(BaseModel):
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
    name: Name
    condition: s.Condition | None = None
    actions: ActionList

    @model_validator(mode="before")
    @classmethod
    def _limits(cls, data: Any) -> Any:
        # The same depth and node limits as a selection's filter, on the raw JSON.
        if isinstance(data, dict) and "condition" in data:
            s.check_size(data["condition"], "condition")
        return data


class Rule(BaseModel):
    id: int
    name: str
    condition: dict | None
    actions: list[dict]
    created_at: datetime
    updated_at: datetime
