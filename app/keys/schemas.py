from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.types import UTCDatetime, text

Scope = Literal["full", "read"]
SCOPE = "`full`: everything; `read`: GETs, count, preview and export (any other request is a 403)."


class KeyIn(BaseModel):
    """An API key to create for the account."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"label": "shop front end", "scope": "read"}]},
    )
    label: text(255, min_length=1) = Field(
        description="Who uses it, for people: shown as the `created_by` of the jobs it submits."
    )
    scope: Scope = Field("full", description=SCOPE)


class Key(BaseModel):
    """An API key of the account, without its secret."""

    id: int = Field(description="The key's id (to revoke it).")
    label: str = Field(description="Who uses it.")
    scope: Scope = Field(description=SCOPE)
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: UTCDatetime = Field(description="When it was created.")
    last_used_at: UTCDatetime | None = Field(
        description="The last request made with it (to the minute); null: never used."
    )


class NewKey(Key):
    """A key just created: the only answer that holds its secret."""

    key: str = Field(
        description="The secret, for `Authorization: Bearer …`: shown this once (only a hash of it is kept)."
    )


class KeyList(BaseModel):
    """The account's API keys."""

    keys: list[Key] = Field(
        description="Every key of the account, oldest first (a revoked key is gone)."
    )
