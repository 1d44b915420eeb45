from pydantic import BaseModel, ConfigDict, Field

from app.contacts.schemas import Contact
from app.names import Name
from app.types import UTCDatetime

NEXT = "Pass as `after` for the next page; null on the last page."


class ContactPage(BaseModel):
    """A page of the account's contacts, lowest id first."""

    contacts: list[Contact] = Field(description="Whole contacts, soft-deleted ones too.")
    next_after: int | None = Field(description=NEXT)


class TagIn(BaseModel):
    """A tag to create before any contact has it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "VIP"}]})
    name: Name = Field(
        description="The tag's name; unique in the account ignoring case (an existing tag of "
        "the name is answered, with 200); leading and trailing white space is dropped."
    )


class Tag(BaseModel):
    """A tag of the account."""

    id: int = Field(description="The tag's id.")
    name: str = Field(description="Its name, as first written.")
    created_at: UTCDatetime = Field(description="When it was created.")
    contacts: int = Field(description="Contacts that have it (deleted ones too).")


class TagCount(BaseModel):
    """A tag and how many contacts have it."""

    name: str = Field(description="The tag's name, as first written.")
    contacts: int = Field(description="Contacts that have it (deleted ones too).")


class TagPage(BaseModel):
    """A page of the account's tags, by name."""

    tags: list[TagCount] = Field(description="Tags sorted by name.")
    next_after: str | None = Field(description=NEXT)


class OwnerCount(BaseModel):
    """An owner (a user, by e-mail) and how many contacts they own."""

    email: str = Field(description="The owner's e-mail, lower-case.")
    contacts: int = Field(description="Contacts they own (deleted ones too).")


class OwnerPage(BaseModel):
    """A page of the account's owners, by e-mail."""

    owners: list[OwnerCount] = Field(description="Owners sorted by e-mail.")
    next_after: str | None = Field(description=NEXT)


class EventType(BaseModel):
    """An event type in use, with its events."""

    type: str = Field(description="The type, as recorded (case counts).")
    events: int = Field(description="How many events of this type the account has.")
    last_at: UTCDatetime = Field(description="When the latest one occurred.")


class EventTypePage(BaseModel):
    """A page of the event types in use, by name."""

    event_types: list[EventType] = Field(description="Event types sorted by name.")
    next_after: str | None = Field(description=NEXT)


class DetailCount(BaseModel):
    """A detail name in use and how many contacts have a value for it."""

    name: str = Field(description="The detail's name (case counts).")
    contacts: int = Field(description="Contacts that have this detail (deleted ones too).")


class DetailPage(BaseModel):
    """A page of the detail names in use, by name."""

    details: list[DetailCount] = Field(description="Detail names, sorted.")
    next_after: str | None = Field(description=NEXT)
