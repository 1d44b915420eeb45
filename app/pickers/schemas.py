from pydantic import BaseModel, ConfigDict, Field

from app.contacts.schemas import Contact
from app.names import Name
from app.types import UTCDatetime

NEXT = "Pass as `after` for the next page; null on the last page"


class ContactPage(BaseModel):
    contacts: list[Contact]
    next_after: int | None = Field(description=NEXT)


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "VIP"}]})
    name: Name


class Tag(BaseModel):
    id: int
    name: str
    created_at: UTCDatetime
    contacts: int = Field(description="Contacts that have it")


class TagCount(BaseModel):
    name: str
    contacts: int


class TagPage(BaseModel):
    tags: list[TagCount]
    next_after: str | None = Field(description=NEXT)


class OwnerCount(BaseModel):
    email: str
    contacts: int


class OwnerPage(BaseModel):
    owners: list[OwnerCount]
    next_after: str | None = Field(description=NEXT)


class EventType(BaseModel):
    type: str
    events: int
    last_at: UTCDatetime


class EventTypePage(BaseModel):
    event_types: list[EventType]
    next_after: str | None = Field(description=NEXT)


class DetailCount(BaseModel):
    name: str
    contacts: int


class DetailPage(BaseModel):
    details: list[DetailCount]
    next_after: str | None = Field(description=NEXT)
