"""Shared value types for request bodies and paths.

Request bodies are typed as strictly as their JSON Schema reads: an integer field takes a
JSON integer (not "5", 5.5 or true; 5.0 is one, as JSON Schema has it), a boolean takes
true/false (not 0/1), a number takes a JSON number (not a string or a boolean), a date or
time takes an ISO 8601 string (not a Unix timestamp). What the schema rejects, the API
rejects."""

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator, Field, StrictFloat, StringConstraints

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NO_NUL = "^[^\\x00]*$"  # (JSON Schema's pattern for a text without NUL)
_INT64 = {"format": "int64"}


def _json_integer(value):
    """A JSON integer: a number without a fraction (pydantic takes 5.0 and refuses 5.5), never
    a string or a boolean."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be an integer")
    return value


def integer(ge: int = INT64_MIN, le: int = INT64_MAX, **extra) -> Any:
    """A JSON integer within bounds (64-bit unless narrower), as the schema documents it.
    (The bounds go on the int itself, before the validator, or the schema loses them.)"""
    return Annotated[int, Field(ge=ge, le=le, **extra), BeforeValidator(_json_integer)]


# A 64-bit integer (what PostgreSQL's bigint and SQLite's INTEGER hold).
Int64 = integer(json_schema_extra=_INT64)
# An id in a body: a positive 64-bit integer.
Id = integer(ge=1, json_schema_extra=_INT64)
# An id in a path: any 64-bit integer (one that names nothing is a 404); past 64 bits, a 422.
PathId = Annotated[
    int,
    Path(
        ge=INT64_MIN,
        le=INT64_MAX,
        description="The id (one of another account, or none, is a 404)",
        json_schema_extra=_INT64,
    ),
]


def query_id(description: str) -> Any:
    """An optional id in a query string (a page's cursor): a positive 64-bit integer; past
    64 bits a 422, never a 500 from a database that cannot compare it."""
    return Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description=description, json_schema_extra=_INT64)
    ]


def query_text(max_length: int, description: str) -> Any:
    """An optional text in a query string: no NUL (PostgreSQL's text cannot hold one; a
    422 at `query.NAME`, never a 500), as the schema documents."""
    return Annotated[
        str | None,
        Query(
            max_length=max_length, description=description, json_schema_extra={"pattern": NO_NUL}
        ),
        AfterValidator(lambda value: value if value is None else no_nul(value)),
    ]


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def text(max_length: int, min_length: int = 0) -> Any:
    """A string without NUL (PostgreSQL's text cannot hold one), as the schema documents."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(no_nul),
        Field(json_schema_extra={"pattern": NO_NUL}),
    ]


# Keys of a contact's or an event's details (and a contact's funnels) in one request.
MAX_DETAILS = 100


def keys_by_pattern(schema: dict) -> None:
    """pydantic documents a dict whose keys have a pattern as `patternProperties`, which
    lets any other key (and value) through; say what is validated instead: the pattern in
    `propertyNames`, the value schema in `additionalProperties`."""
    for node in [schema, *schema.get("anyOf", [])]:
        by_pattern = node.pop("patternProperties", None)
        if by_pattern:
            ((pattern, value),) = by_pattern.items()
            node["additionalProperties"] = value
            node.setdefault("propertyNames", {})["pattern"] = pattern


# A finite JSON number (an integer is one).
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]


_NUMERIC = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_text(value):
    """Dates and times come as ISO 8601 strings: a number, or a string of one, is not one
    (pydantic would read either as a Unix timestamp)."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        raise ValueError("must be an ISO 8601 string (YYYY-MM-DD, YYYY-MM-DDThh:mm:ssZ)")
    return value


def _utc(value: datetime) -> datetime:
    """Times are UTC when no offset is given."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UTCDatetime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc)]
ISODate = Annotated[date, BeforeValidator(_iso_text)]


def _aware(value: datetime) -> datetime:
    """UTC when no offset is given; an offset that is given is kept (its date is the
    'date of as_of' for date fields)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


OffsetDatetime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_aware)]
