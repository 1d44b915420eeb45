from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.contacts.schemas import Contact
from app.names import Name
from app.selection.spec import Selection


class CountResult(BaseModel):
    total: int


class PreviewIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"selection": {"include": [{"type": "tag", "tags": ["VIP"]}]}, "limit": 20}
            ]
        },
    )
    selection: Selection = Field(default_factory=Selection)
    limit: int = Field(default=20, ge=0, le=1000)


class PreviewResult(BaseModel):
    total: int
    contacts: list[Contact]


class SegmentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Active VIPs",
                    "selection": {
                        "include": [{"type": "tag", "tags": ["VIP"]}],
                        "filter": {"field": "email_opt_in", "op": "eq", "value": True},
                    },
                }
            ]
        },
    )
    name: Name
    selection: Selection


class Segment(BaseModel):
    id: int
    name: str
    selection: dict
    created_at: datetime
    updated_at: datetime
