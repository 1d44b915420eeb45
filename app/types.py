"""Shared value types for request bodies."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def _utc(value: datetime) -> datetime:
    """Times are UTC when no offset is given."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UTCDatetime = Annotated[datetime, AfterValidator(_utc)]


def _aware(value: datetime) -> datetime:
    """UTC when no offset is given; an offset that is given is kept (its date is the
    'date of as_of' for date fields)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


OffsetDatetime = Annotated[datetime, AfterValidator(_aware)]
