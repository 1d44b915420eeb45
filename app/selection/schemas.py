from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.contacts.schemas import Contact, FieldName, known_fields
from app.names import Name
from app.selection.spec import Selection
from app.types import Id, integer


class CountResult(BaseModel):
    """How many contacts a selection selects: exact, never an estimate."""

    total: int = Field(description="The number of contacts selected.")


class PreviewIn(BaseModel):
    """A page of the contacts a selection selects, lowest ids first."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"selection": {"include": [{"type": "tag", "tags": ["VIP"]}]}, "limit": 20}
            ]
        },
    )
    selection: Selection = Field(
        default_factory=Selection, description="Which contacts; absent: every live contact."
    )
    limit: integer(ge=0, le=1000) = Field(
        20, description="At most this many contacts in the page (0: the total only)."
    )
    after: Id | None = Field(
        None,
        description="`next_after` of the previous page: contacts with a higher id; "
        "null: from the first.",
    )
    fields: list[FieldName] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Only these contact fields (and `detail:NAME`, one detail) in each "
        "contact; null: whole contacts.",
    )

    @field_validator("fields")
    @classmethod
    def _known(cls, fields: list[str] | None) -> list[str] | None:
        return None if fields is None else known_fields(fields)


class PreviewResult(BaseModel):
    """The total of a selection and one page of its contacts."""

    total: int = Field(description="How many contacts the selection selects, in all pages.")
    contacts: list[Contact | dict[str, Any]] = Field(
        description="Whole contacts, or (with `fields`) objects of only the fields asked for; "
        "lowest ids first."
    )
    next_after: int | None = Field(
        None, description="Pass as `after` for the next page; null on the last page."
    )


class SegmentIn(BaseModel):
    """A saved segment: a selection stored under a name, for other selections (and rules)
    to use by name with a `segment` selector."""

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
    name: Name = Field(
        description="Unique in the account, ignoring case; leading and trailing white space "
        "is dropped."
    )
    selection: Selection = Field(
        description="The stored selection; it may use other segments, never itself, "
        "directly or through others (a 422)."
    )


class Segment(BaseModel):
    """A saved segment."""

    id: int = Field(description="The segment's id.")
    name: str = Field(description="Its name, as last given.")
    selection: dict = Field(description="The stored selection spec: the keys that were sent.")
    created_at: datetime = Field(description="When it was created.")
    updated_at: datetime = Field(description="When it was last changed.")
