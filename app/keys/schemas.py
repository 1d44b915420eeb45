from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.types import UTCDatetime, text

Scope = Literal["full", "read"]


class KeyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"label": "shop front end", "scope": "read"}]},
    )
    label: text(255, min_length=1) = Field(description="Who uses it: shown as a job's created_by")
    scope: Scope = Field(
        "full",
        description="full: everything; read: GETs, count and preview (anything else is 403)",
    )


class Key(BaseModel):
    id: int
    label: str
    scope: Scope
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: UTCDatetime
    last_used_at: UTCDatetime | None = Field(
        description="Last request made with it (to the minute)"
    )


class NewKey(Key):
    key: str = Field(description="The secret: shown this once, never stored")


class KeyList(BaseModel):
    keys: list[Key]
