from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.contacts.schemas import Contact, FieldName, known_fields
from app.names import Name
from app.selection.spec import Selection
from app.types import Id, integer


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
    limit: integer(ge=0, le=1000) = 20
    after: Id | None = Field(None, description="next_after of the previous page: contacts past it")
    fields: list[FieldName] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Only these contact fields (and `detail:NAME`) in each contact",
    )

    @field_validator("fields")
    @classmethod
    def _known(cls, fields: list[str] | None) -> list[str] | None:
        return None if fields is None else known_fields(fields)


class PreviewResult(BaseModel):
    total: int
    contacts: list[Contact | dict[str, Any]] = Field(
        description="Whole contacts, or (with `fields`) objects of only the fields asked for"
    )
    next_after: int | None = Field(
        None, description="Pass as `after` for the next page; null on the last page"
    )


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
