"""Schemathesis against the served OpenAPI schema: every operation, positive and negative
data, all of its default checks, as a seeded account (contacts, a funnel, a group, a mailing,
events, a rule, a segment and a job exist, so positive cases and the schema's examples hit
real data). Bounded for CI: FUZZ_EXAMPLES per operation, no shrinking, no coverage phase
for bodies holding a condition tree; about 40 s."""

import re
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.auth import create_account
from app.openapi import document
from tests.conftest import PG_URL, Scoped

FUZZ_EXAMPLES = 30


def seed(client: Scoped) -> None:
    """What the schema's examples refer to, and a little more."""
    client.load(
        {
            "email": "anna.nowak@example.com",
            "first_name": "Anna",
            "city": "Łódź",
            "country": "PL",
            "tags": ["VIP"],
            "details": {"plan": "gold"},
            "email_opt_in": True,
        },
        {"email": "jan.kowalski@example.com", "first_name": "Jan", "birth_date": "1988-04-12"},
        {"email": "ewa@example.org", "state": "CUSTOMER", "score": 7, "tags": ["newsletter"]},
    )
    for url, body in [
        ("/v1/funnels", {"name": "Sales", "stages": ["Lead", "Offer", "Won"]}),
        ("/v1/groups", {"name": "Blacklist"}),
        (
            "/v1/mailings",
            {
                "name": "November newsletter",
                "sent_at": "2026-11-02T09:00:00Z",
                "recipients": [
                    {"email": "anna.nowak@example.com", "opened_at": "2026-11-02T10:12:00Z"}
                ],
            },
        ),
        (
            "/v1/events",
            {
                "events": [
                    {
                        "email": "anna.nowak@example.com",
                        "type": "PURCHASE",
                        "occurred_at": "2026-11-20T14:30:00Z",
                        "value": 129.9,
                    }
                ]
            },
        ),
        (
            "/v1/rules",
            {"name": "Welcome", "actions": [{"type": "add_tags", "tags": ["welcomed"]}]},
        ),
        (
            "/v1/segments",
            {"name": "VIPs", "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]}},
        ),
        (
            "/v1/jobs",
            {
                "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]},
                "actions": [{"type": "generate_coupons", "name": "BF", "length": 8}],
            },
        ),
    ]:
        r = client.post(url, json=body)
        assert r.status_code < 300, (url, r.text)
    client.post(
        "/v1/contacts",
        json={"contacts": [{"email": "ewa@example.org", "funnels": {"Sales": "Lead"}}]},
    )


# Operations whose body holds a Condition tree (recursive): the coverage phase enumerates
# its cases up front, which takes minutes per operation; they get the fuzzing phase only.
CONDITION_TREES = [
    "count_selection",
    "preview_selection",
    "create_segment",
    "update_segment",
    "create_rule",
    "update_rule",
    "submit_job",
]
CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {"include-operation-id": CONDITION_TREES, "phases": {"coverage": {"enabled": False}}}
        ]
    }
)


class Target:
    """The app under test, as one ASGI app for the schema: the `api` fixture's app of the
    database being fuzzed. That fixture's TestClient runs its lifespan, so here the
    lifespan is a no-op."""

    app = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await self.app(scope, receive, send)


TARGET = Target()
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)
schema.app = TARGET


# Fuzzed on one database: PostgreSQL when it is reachable (as in CI), else SQLite.
pytestmark = pytest.mark.parametrize(
    "db_url",
    [pytest.param("postgres", marks=pytest.mark.postgres) if PG_URL else "sqlite"],
    indirect=True,
    scope="session",
)


@pytest.fixture(scope="module")
def fuzz_key(api, engine) -> str:
    """The API key of a seeded account of its own."""
    with engine.begin() as conn:
        _, key = create_account(conn, f"fuzz-{uuid.uuid4().hex[:8]}")
    seed(Scoped(api, key))
    return key


# What a schema cannot say, and the contract makes a 422: a request of valid shape that
# names a segment, rule, tag, group, funnel, stage or mailing the account does not have
# (a mailing id may be negative), or an e-mail no contact has; segments that refer to themselves or nest too deep; a tree past the size limits;
# an event window that ends before it starts; a condition's operator or operand that does
# not fit its field (fields are dynamic: `detail.*`); stage names equal but for case.
# Schemathesis's positive_data_acceptance would call any such 422 a failure; this check
# allows a 422 only when every detail is one of those.
SEMANTIC = re.compile(
    r"^(unknown (segment|rule|funnel|stage)( |$)|no contact with e-mail "
    r"|no (tag|group|funnel|stage) named |no mailing -?\d"
    r"|the (selection expands|selection holds|actions expand) "
    r"|segment .* refers to itself|a segment may not refer to itself"
    r"|segments refer to each other|segments nest deeper"
    r"|the tree (is deeper|has more)|'to' is before 'from'|stage names must differ)"
)
OPERAND = re.compile(r"(^|\.)(filter|condition)(\.(and|or)\[\d+\]|\.not)*\.(value|op)(\[\d+\])?$")
# JSON Schema validators compare numbers as doubles: an integer within 2**10 past a 64-bit
# bound reads as within it to them, not to us.
INT64_BOUND = re.compile(
    r"^Input should be (greater|less) than or equal to -?922337203685477580[78]$"
)


def semantic(detail: dict) -> bool:
    return bool(
        SEMANTIC.match(detail["message"])
        or OPERAND.search(detail["path"])
        or INT64_BOUND.match(detail["message"])
    )


def positive_data_acceptance_by_reference(ctx, response, case):
    if not case.meta.generation.mode.is_positive or response.status_code != 422:
        return None
    details = response.json()["error"]["details"]
    others = [d for d in details if not semantic(d)]
    assert details and not others, f"valid data rejected: {others or response.text}"
    return None


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_api(case, api, fuzz_key):
    TARGET.app = api.app
    case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_key}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[positive_data_acceptance_by_reference],
    )
