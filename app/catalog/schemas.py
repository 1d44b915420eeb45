from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.contacts.schemas import Email
from app.names import Name
from app.types import MAX_DETAILS, Number, UTCDatetime, keys_by_pattern, text


class FunnelIn(BaseModel):
    """A sales funnel: a name and its stages in order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Sales", "stages": ["Lead", "Offer", "Won"]}]},
    )
    name: Name = Field(
        description="Unique in the account, ignoring case; leading and trailing white space "
        "is dropped."
    )
    stages: list[Name] = Field(
        min_length=1,
        max_length=1000,
        json_schema_extra={"uniqueItems": True},
        description="Stage names in funnel order, distinct ignoring case.",
    )


class Funnel(BaseModel):
    """A sales funnel; a contact stands at one stage of it at most."""

    id: int = Field(description="The funnel's id.")
    name: str = Field(description="Its name.")
    stages: list[str] = Field(description="Stage names in funnel order.")
    contacts: dict[str, int] = Field(
        description="How many contacts stand at each stage, by stage name (deleted ones too)."
    )


class RecipientIn(BaseModel):
    """One recipient of a mailing: a contact of the account, by e-mail."""

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
    email: Email = Field(
        description="An existing contact's e-mail, any case (none: a 422 naming it); listed "
        "twice, the later entry wins."
    )
    sent_at: UTCDatetime | None = Field(
        None, description="When it was sent to this contact; null: the mailing's `sent_at`."
    )
    opened_at: UTCDatetime | None = Field(None, description="When it was opened; null: never.")
    clicked_at: UTCDatetime | None = Field(
        None, description="When a link in it was clicked; null: never."
    )
    bounced: StrictBool = Field(False, description="Whether it bounced.")


class MailingIn(BaseModel):
    """A mailing that was sent, with its recipients, for `mailing` selectors."""

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
    name: Name = Field(description="A name for people; several mailings may share one.")
    sent_at: UTCDatetime = Field(description="When it was sent (ISO 8601; UTC without offset).")
    recipients: list[RecipientIn] = Field(
        default_factory=list, max_length=100_000, description="Who received it."
    )


class Mailing(BaseModel):
    """A mailing; selectors name it by `id`."""

    id: int = Field(description="The mailing's id.")
    name: str = Field(description="Its name.")
    sent_at: UTCDatetime = Field(description="When it was sent.")
    recipients: int = Field(description="How many contacts received it.")


class EventIn(BaseModel):
    """Something a contact did (a purchase, a visit…), for event tests."""

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
    email: Email = Field(
        description="An existing contact's e-mail, any case (none: a 422 naming it)."
    )
    type: text(64, min_length=1) = Field(
        description="Any name, e.g. `PURCHASE`, `CART`, `VISIT`; compared exactly (case counts)."
    )
    occurred_at: UTCDatetime = Field(description="When it happened (ISO 8601; UTC without offset).")
    value: Number | None = Field(
        None, description="An amount (a price, a cart's total…); null: none."
    )
    products: text(10_000) | None = Field(
        None, description="Free text naming the products, for `products_contains`."
    )
    details: dict[text(255), text(10_000)] | None = Field(
        default=None,
        max_length=MAX_DETAILS,
        json_schema_extra=keys_by_pattern,
        description="Free `name → text` values, kept with the event.",
    )


class EventsIn(BaseModel):
    """Events to record, all or nothing."""

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
    events: list[EventIn] = Field(
        min_length=1, max_length=10_000, description="Up to 10,000 events."
    )


class EventsResult(BaseModel):
    """What an event upload recorded."""

    created: int = Field(description="How many events were recorded.")


class GroupIn(BaseModel):
    """A group of defined addressees: a named, static set of contacts."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Blacklist"}]}
    )
    name: Name = Field(
        description="Unique in the account, ignoring case; leading and trailing white space "
        "is dropped."
    )


class Group(BaseModel):
    """A group of defined addressees."""

    id: int = Field(description="The group's id.")
    name: str = Field(description="Its name.")
    members: int = Field(description="How many contacts it holds (deleted ones too).")
    created_at: UTCDatetime = Field(description="When it was created.")
