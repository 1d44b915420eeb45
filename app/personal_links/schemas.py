from datetime import datetime

from pydantic import BaseModel


class Link(BaseModel):
    token: str
    contact_id: int
    email: str
    job_id: int | None
    url: str
    created_at: datetime
