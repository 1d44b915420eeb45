"""Personal links: a URL per contact with a token of its own, listed by the job's output."""

import re
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field, StringConstraints, field_validator

from app import tables as t
from app.actions import changes
from app.actions.base import (
    ActionHandler,
    ActionModel,
    RunContext,
    chunk_contacts,
    handles,
    record_output,
)
from app.db import insert_rows
from app.personal_links.secret import link_token

# What the schema documents and the validator enforces (with friendlier messages).
URL_TEMPLATE = re.compile(r"^https?://[!-~]*\{token\}[!-~]*$")


class GenerateLinks(ActionModel):
    """Makes the contact a personal link: the URL with a token of its own. The job's output
    (`GET /v1/jobs/{id}/output`) lists them; `GET /v1/links/{token}` tells whose a token
    is."""

    type: Literal["generate_links"]
    url: Annotated[
        str,
        StringConstraints(max_length=2000),
        Field(
            json_schema_extra={"pattern": URL_TEMPLATE.pattern},
            description="An http(s) URL in printable ASCII (percent-encode the rest) "
            "with `{token}` where each contact's token goes.",
        ),
    ]

    @field_validator("url")
    @classmethod
    def _template(cls, v: str) -> str:
        if not (v.startswith("https://") or v.startswith("http://")):
            raise ValueError("must be an http(s) URL")
        if "{token}" not in v:
            raise ValueError("must contain {token}")
        if not URL_TEMPLATE.match(v):
            raise ValueError("must be printable ASCII: no white space or control characters")
        return v


@handles(GenerateLinks)
class GenerateLinksHandler(ActionHandler):
    def changes(self, rc: RunContext):
        return sa.true()

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        contacts = list(rc.conn.execute(chunk_contacts(rc, ids)).scalars())
        if not contacts:
            return set()
        secret = rc.settings.link_secret
        if not secret:  # `audience serve` / `worker` never start so; only embedded use can
            raise RuntimeError("AUDIENCE_LINK_SECRET is not set: no personal links without it")
        tokens = {cid: link_token(secret, rc.account_id, cid, rc.job_id) for cid in contacts}
        urls = {cid: self.action.url.replace("{token}", tok) for cid, tok in tokens.items()}
        rows = [{"contact_id": cid, "token": tok, "url": urls[cid]} for cid, tok in tokens.items()]
        constants = {"account_id": rc.account_id, "job_id": rc.job_id, "created_at": rc.now}
        made = set(
            rc.conn.execute(
                insert_rows(rc.conn, t.links, rows, constants)
                .on_conflict_do_nothing()
                .returning(t.links.c.contact_id)
            ).scalars()
        )
        record_output(rc, urls)
        kept = {"job_id": rc.job_id, "created_at": rc.now.isoformat()}
        changes.log_rows(
            rc,
            self.type,
            [
                {
                    "contact_id": cid,
                    "field": "link",
                    "ref": 0,
                    "after": tokens[cid],
                    "after_at": rc.now,
                    "after_extra": changes.extra({**kept, "url": urls[cid]}),
                }
                for cid in sorted(made)
            ],
        )
        return set(contacts)
