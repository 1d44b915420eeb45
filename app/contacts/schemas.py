import re
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from app.names import WHITE_SPACE, WS_CLASS, Name
from app.types import MAX_DETAILS, Int64, ISODate, UTCDatetime, keys_by_pattern, no_nul, text


class Sex(StrEnum):
    """A contact's sex: `unknown` until set, or found by `identify_sex`."""

    female = "female"
    male = "male"
    unknown = "unknown"


class State(StrEnum):
    """Where a contact stands with you."""

    UNKNOWN = "UNKNOWN"
    PROSPECT = "PROSPECT"
    CUSTOMER = "CUSTOMER"
    PARTNER = "PARTNER"
    OTHER = "OTHER"


# The loading rule, as the schema documents it: one '@', no white space or control
# characters. Full syntax is `invalidate_bad_emails`' job.
_EMAIL_CHAR = rf"[^@\x00-\x1f\x7f{WS_CLASS}]"
EMAIL_PATTERN = rf"^{_EMAIL_CHAR}*@{_EMAIL_CHAR}*$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)


def check_email(value: str) -> str:
    """The loading rule: one '@', no white space, at most 254 characters."""
    if value.count("@") != 1:
        raise ValueError("an e-mail address has exactly one '@'")
    if not _EMAIL_RE.match(value):
        raise ValueError("an e-mail address has no white space or control characters")
    if len(value) > 254:
        raise ValueError("an e-mail address has at most 254 characters")
    return value.lower()


def _upper(value):
    return value.upper() if isinstance(value, str) else value


def _ci_enum(enum):
    """Accept enum values ignoring case ('customer' → CUSTOMER)."""

    def parse(value):
        if isinstance(value, str):
            for member in enum:
                if member.value.lower() == value.strip().lower():
                    return member.value
        return value

    return parse


def _at_most(n: int):
    def check(value):
        if isinstance(value, str) and len(value) > n:
            raise ValueError(f"must have at most {n} characters")
        return value

    return check


def _clean_text(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = no_nul(value).strip(WHITE_SPACE)
        return value or None
    return value


Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(check_email),
    Field(json_schema_extra={"pattern": EMAIL_PATTERN}),
]
# Checked as sent (so as the schema says), then trimmed; blank means none.
Text = Annotated[
    Annotated[str, StringConstraints(max_length=1000)] | None,
    BeforeValidator(_clean_text),
    BeforeValidator(_at_most(1000)),
    Field(json_schema_extra={"pattern": "^[^\\x00]*$"}),
]
Country = Annotated[
    Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None,
    BeforeValidator(_upper),
    BeforeValidator(_clean_text),
    Field(
        description="ISO 3166-1 alpha-2, any case; empty means none",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "pattern": rf"^[{WS_CLASS}]*([A-Za-z]{{2}})?[{WS_CLASS}]*$"},
                {"type": "null"},
            ]
        },
    ),
]
Score = Int64
SexField = Annotated[Sex, BeforeValidator(_ci_enum(Sex))]
StateField = Annotated[State, BeforeValidator(_ci_enum(State))]
DetailName = text(255, min_length=1)
DetailValue = text(10_000)


def _absent_means_unchanged(schema: dict) -> None:
    # No defaults in the schema: generated clients send every field that has one, and an
    # upsert would then reset an existing contact's score, state, opt-ins...
    for prop in schema["properties"].values():
        prop.pop("default", None)
    schema["examples"] = [
        {
            "email": "jan.kowalski@example.com",
            "first_name": "Jan",
            "last_name": "Kowalski",
            "birth_date": "1988-04-12",
            "state": "CUSTOMER",
            "email_opt_in": True,
            "tags": ["newsletter"],
        }
    ]


class ContactIn(BaseModel):
    """A contact to create or update, by e-mail. Absent fields are left as they are; a new
    contact starts with sex `unknown`, score 0, state `PROSPECT`, both opt-ins false and
    `email_valid` true."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_absent_means_unchanged)

    email: Email = Field(description="Who: the key of the upsert (stored lower case)")
    first_name: Text = Field(None, description="First name (also what identify_sex reads)")
    last_name: Text = Field(None, description="Last name")
    phone: Text = Field(None, description="Phone number, as given")
    company: Text = Field(None, description="Company name")
    city: Text = Field(None, description="City")
    country: Country = Field(None, description="Country, e.g. an ISO code such as PL")
    birth_date: ISODate | None = Field(None, description="Date of birth (YYYY-MM-DD)")
    sex: SexField = Field(Sex.unknown, description="female, male or unknown")
    score: Score = Field(0, description="A whole number you rank contacts by")
    state: StateField = Field(State.PROSPECT, description="Where the contact stands with you")
    email_opt_in: StrictBool = Field(False, description="May be sent e-mail")
    phone_opt_in: StrictBool = Field(False, description="May be called or texted")
    email_valid: StrictBool = Field(True, description="The address is believed deliverable")
    created_at: UTCDatetime | None = Field(
        None, description="When the contact first came (a new contact: now, when absent)"
    )
    tags: list[Name] = Field(
        default_factory=list, max_length=1000, description="Tags to add (created if new)"
    )
    details: dict[DetailName, DetailValue | None] = Field(
        default_factory=dict,
        max_length=MAX_DETAILS,
        json_schema_extra=keys_by_pattern,
        description="Custom details to set, by name (null removes one)",
    )
    owners: list[Email] = Field(
        default_factory=list, max_length=100, description="Owners (sales people) to add"
    )
    funnels: dict[Name, Name] = Field(
        default_factory=dict,
        max_length=MAX_DETAILS,
        json_schema_extra=keys_by_pattern,
        description="Funnel name → the stage to put the contact at (both must exist)",
    )
    groups: list[Name] = Field(
        default_factory=list, max_length=1000, description="Groups to join (created if new)"
    )


class ContactsIn(BaseModel):
    """Up to 10,000 contacts to create or update, all or nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "contacts": [
                        {
                            "email": "anna.nowak@example.com",
                            "first_name": "Anna",
                            "city": "Łódź",
                            "country": "PL",
                            "tags": ["VIP"],
                            "details": {"plan": "gold"},
                        }
                    ]
                }
            ]
        },
    )

    contacts: list[ContactIn] = Field(
        min_length=1,
        max_length=10_000,
        description="The contacts; a later entry for an e-mail wins over an earlier one",
    )


class UpsertResult(BaseModel):
    """What an upsert did."""

    created: int = Field(description="Contacts that were new")
    updated: int = Field(description="Contacts that existed (whether or not a value changed)")
    ids: dict[str, int] = Field(description="Each contact's id, by its e-mail (lower case)")


class Contact(BaseModel):
    """A contact, whole: its fields and what it belongs to."""

    id: int = Field(description="The contact's id")
    email: str = Field(description="E-mail address (lower case)")
    first_name: str | None = Field(description="First name")
    last_name: str | None = Field(description="Last name")
    phone: str | None = Field(description="Phone number")
    company: str | None = Field(description="Company name")
    city: str | None = Field(description="City")
    country: str | None = Field(description="Country")
    birth_date: date | None = Field(description="Date of birth")
    sex: Sex = Field(description="female, male or unknown")
    score: int = Field(description="Score")
    state: State = Field(description="Where the contact stands with you")
    email_opt_in: bool = Field(description="May be sent e-mail")
    phone_opt_in: bool = Field(description="May be called or texted")
    email_valid: bool = Field(description="The address is believed deliverable")
    deleted: bool = Field(description="Soft-deleted (the `delete` action; `undelete` undoes)")
    created_at: UTCDatetime = Field(description="When the contact first came (UTC)")
    updated_at: UTCDatetime = Field(description="When the contact was last updated (UTC)")
    tags: list[str] = Field(description="Tag names")
    details: dict[str, str] = Field(description="Custom details, by name")
    owners: list[str] = Field(description="Owners' e-mails")
    funnels: dict[str, str] = Field(description="Funnel name → the stage the contact is at")
    groups: list[str] = Field(description="Group names")


def known_fields(fields: list[str]) -> list[str]:
    """Field names a client may pick (preview, export): a contact's, or `detail:NAME`."""
    names = list(Contact.model_fields)
    for f in fields:
        if f not in names and not (f.startswith("detail:") and len(f) > 7):
            raise ValueError(f"unknown field '{f}': one of {', '.join(names)} or detail:NAME")
    return fields


def pick(contact: dict, fields: list[str]) -> dict:
    """The contact's `fields` only (`detail:NAME`: that detail, or None)."""
    return {
        f: contact["details"].get(f[7:]) if f.startswith("detail:") else contact[f] for f in fields
    }


# What `fields` of a preview or an export may name, as the schema says it.
FIELD_PATTERN = "^(" + "|".join(Contact.model_fields) + "|detail:.+)$"
FieldName = Annotated[str, StringConstraints(pattern=FIELD_PATTERN, max_length=300)]
