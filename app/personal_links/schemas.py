from datetime import datetime

from pydantic import BaseModel, Field


class Link(BaseModel):
    """A personal link: a URL made for one contact by a `generate_links` job."""

    token: str = Field(description="The link's token, as it stands in `url`.")
    contact_id: int = Field(description="The contact it was made for.")
    email: str = Field(description="That contact's e-mail.")
    job_id: int | None = Field(description="The job that made it; null: made outside a job.")
    url: str = Field(description="The URL, with the token in place of `{token}`.")
    created_at: datetime = Field(description="When it was made.")
