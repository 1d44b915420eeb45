from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.types import UTCDatetime

# http:// or https://, then a host (what the schema can say; app.webhooks.addresses checks
# the rest: the host's addresses)
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s\x00]+([/?#][^\s\x00]*)?$"

Event = Literal["job.started", "job.succeeded", "job.failed", "job.cancelled"]
EVENTS: tuple[str, ...] = Event.__args__


class WebhookIn(BaseModel):
    """A URL to POST job events to, and which events."""

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
    """A registered webhook (its secret is shown only when it is created)."""

    id: int = Field(description="The webhook's id")
    url: str = Field(description="Where deliveries are POSTed")
    events: list[Event] = Field(description="The job events it is sent")
    created_at: UTCDatetime = Field(description="When it was registered (UTC)")


class NewWebhook(Webhook):
    """A webhook just created, with its signing secret: keep it, it is not shown again."""

    secret: str = Field(
        description="Signs every delivery (Audience-Signature): shown this once, never again"
    )


class WebhookList(BaseModel):
    """The account's webhooks, oldest first."""

    webhooks: list[Webhook] = Field(description="Every webhook of the account")


class Attempt(BaseModel):
    """One attempt to deliver one event."""

    id: int = Field(description="The attempt's id (a page's `before`)")
    event_id: str = Field(description="The delivery's `id`: the same on every attempt")
    event: Event = Field(description="What happened to the job")
    job_id: int = Field(description="The job the event is about")
    attempt: int = Field(description="1 for the first try of this event, then 2, 3 …")
    status: Literal["succeeded", "failed"] = Field(
        description="succeeded: the receiver answered a 2xx in time; failed: anything else"
    )
    response_code: int | None = Field(description="The receiver's HTTP status, if it answered")
    error: str | None = Field(description="Why it failed, when it did")
    at: UTCDatetime = Field(description="When the attempt was made (UTC)")
    duration_ms: int = Field(description="How long it took, in milliseconds")
    next_attempt_at: UTCDatetime | None = Field(
        description="When this event is tried again (null: delivered, or given up)"
    )


class AttemptPage(BaseModel):
    """A webhook's delivery attempts, newest first, a page at a time."""

    deliveries: list[Attempt] = Field(description="Attempts, newest first")
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )
