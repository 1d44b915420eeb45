from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.contacts.schemas import Email
from app.names import Name
from app.types import MAX_DETAILS, Number, UTCDatetime, keys_by_pattern, text


class FunnelIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Sales", "stages": ["Lead", "Offer", "Won"]}]},
    )
    name: Name
    stages: list[Name] = Field(
        min_length=1,
        max_length=1000,
        json_schema_extra={"uniqueItems": True},
        description="distinct names, ignoring case",
    )


class Funnel(BaseModel):
    id: int
    name: str
    stages: list[str]
    contacts: dict[str, int] = Field(
        description="How many contacts stand at each stage, by stage name (deleted ones too)"
    )


class RecipientIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "anna.nowak@example.com",
                    "opened_at": "2026-11-02T10:12:00Z",
                    "clicked_at": "2026-11-02T10:13:30Z",
                }
            ]
        },
    )
    email: Email
    sent_at: UTCDatetime | None = None
    opened_at: UTCDatetime | None = None
    clicked_at: UTCDatetime | None = None
    bounced: StrictBool = False


class MailingIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "November newsletter",
                    "sent_at": "2026-11-02T09:00:00Z",
                    "recipients": [
                        {"email": "anna.nowak@example.com", "opened_at": "2026-11-02T10:12:00Z"}
                    ],
                }
            ]
        },
    )
    name: Name
    sent_at: UTCDatetime
    recipients: list[RecipientIn] = Field(default_factory=list, max_length=100_000)


class Mailing(BaseModel):
    id: int
    name: str
    sent_at: UTCDatetime
    recipients: int


class EventIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "anna.nowak@example.com",
                    "type": "CART",
                    "occurred_at": "2026-11-21T08:05:00Z",
                    "value": 59.0,
                    "details": {"channel": "mobile"},
                }
            ]
        },
    )
    email: Email
    type: text(64, min_length=1)
    occurred_at: UTCDatetime
    value: Number | None = None
    products: text(10_000) | None = None
    details: dict[text(255), text(10_000)] | None = Field(
        default=None, max_length=MAX_DETAILS, json_schema_extra=keys_by_pattern
    )


class EventsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "email": "anna.nowak@example.com",
                            "type": "PURCHASE",
                            "occurred_at": "2026-11-20T14:30:00Z",
                            "value": 129.9,
                            "products": "running shoes",
                        }
                    ]
                }
            ]
        },
    )
    events: list[EventIn] = Field(min_length=1, max_length=10_000)


class EventsResult(BaseModel):
    created: int


class GroupIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Blacklist"}]}
    )
    name: Name


class Group(BaseModel):
    id: int
    name: str
    members: int
    created_at: UTCDatetime
