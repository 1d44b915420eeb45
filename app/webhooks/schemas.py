from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.types import UTCDatetime

# http:// or https://, then a host (what the schema can say; app.webhooks.addresses checks
# the rest: the host's addresses)
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s\x00]+([/?#][^\s\x00]*)?$"

Event = Literal["job.started", "job.succeeded", "job.failed", "job.cancelled"]
EVENTS: tuple[str, ...] = Event.__args__


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://hooks.example.com/audience", "events": ["job.succeeded"]}]
        },
    )
    url: Annotated[str, StringConstraints(max_length=2048, pattern=URL_PATTERN)] = Field(
        description="Where deliveries are POSTed: an http(s) URL on a public address"
    )
    events: list[Event] = Field(
        default_factory=lambda: list(EVENTS),
        min_length=1,
        description="The events to deliver (default: all of them)",
    )


class Webhook(BaseModel):
    id: int
    url: str
    events: list[Event]
    created_at: UTCDatetime


class NewWebhook(Webhook):
    secret: str = Field(
        description="Signs every delivery (Audience-Signature): shown this once, never again"
    )


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class Attempt(BaseModel):
    """One attempt to deliver one event."""

    id: int
    event_id: str = Field(description="The delivery's `id`: the same on every attempt")
    event: Event
    job_id: int
    attempt: int = Field(description="1 for the first try of this event, then 2, 3 …")
    status: Literal["succeeded", "failed"]
    response_code: int | None = Field(description="The receiver's HTTP status, if it answered")
    error: str | None = Field(description="Why it failed, when it did")
    at: UTCDatetime
    duration_ms: int
    next_attempt_at: UTCDatetime | None = Field(
        description="When this event is tried again (null: delivered, or given up)"
    )


class AttemptPage(BaseModel):
    deliveries: list[Attempt]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )
