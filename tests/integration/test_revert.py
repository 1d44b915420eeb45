"""The change log, revert and history: every action's job reverted gives back the data as
it was, field by field and time by time; later changes are left alone and counted; a
revert reverted re-applies; 409 / 410; a contact's history; the job's story."""

import csv
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import tables as t
from app.jobs import repository
from tests.integration.test_jobs import ACTIONS, people  # noqa: F401 (a fixture)

# What a job may change of an account, table by table, as comparable rows (updated_at
# aside: a revert is a change too).
STATE = {
    "contacts": [
        "id",
        "email_opt_in",
        "phone_opt_in",
        "email_valid",
        "state",
        "score",
        "sex",
        "deleted",
    ],
    "contact_tags": ["contact_id", "tag_id", "added_at"],
    "group_members": ["contact_id", "group_id", "added_at"],
    "contact_owners": ["contact_id", "user_id", "added_at"],
    "contact_funnels": ["contact_id", "funnel_id", "stage_id", "entered_at"],
    "contact_details": ["contact_id", "name", "value"],
    "coupons": ["contact_id", "name", "name_key", "code", "valid_until", "job_id", "created_at"],
    "links": ["contact_id", "token", "url", "job_id", "created_at"],
}


def state(engine, account_id: int) -> dict:
    with engine.connect() as conn:
        return {
            name: sorted(
                tuple(r)
                for r in conn.execute(
                    sa.select(*[t.metadata.tables[name].c[col] for col in cols]).where(
                        t.metadata.tables[name].c.account_id == account_id
                    )
                )
            )
            for name, cols in STATE.items()
        }


def submit_revert(client, job_id: int) -> dict:
    r = client.post(f"/v1/jobs/{job_id}/revert")
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    return r.json()


def revert(client, job_id: int) -> dict:
    return client.wait(submit_revert(client, job_id)["id"])


@pytest.fixture
def ids(people) -> list[int]:  # noqa: F811 (test_jobs' fixture)
    """test_jobs' people: anna, jan, kim, bad."""
    return [people[name] for name in ("anna", "jan", "kim", "bad")]


EXTRA = [
    [{"type": "generate_coupons", "name": "BF", "length": 8}],
    [
        {"type": "generate_coupons", "name": "BF", "length": 8},
        {"type": "generate_coupons", "name": "bf", "length": 6, "valid_days": 3},
    ],
    [{"type": "generate_links", "url": "https://shop.example/p/{token}"}],
    [
        {"type": "add_tags", "tags": ["a", "b"]},
        {"type": "remove_tags", "tags": ["a", "VIP"]},
        {"type": "set_score", "mode": "add", "value": 5},
        {"type": "set_score", "mode": "add", "value": 5},
        {"type": "delete"},
    ],
]
CASES = [a for a, _, _ in ACTIONS] + EXTRA


@pytest.mark.parametrize(
    "actions", CASES, ids=[" ".join(a["type"] for a in x) + f"-{i}" for i, x in enumerate(CASES)]
)
def test_revert_gives_back_exactly_what_the_job_changed(client, engine, account, ids, actions):
    account_id = account[0]
    if any(a["type"] == "generate_coupons" for a in actions):  # coupons to be replaced
        client.run({"include": [{"type": "tag", "tags": ["vip"]}]}, [EXTRA[0][0]])
    before = state(engine, account_id)
    job = client.run({}, actions)
    assert job["status"] == "succeeded", job
    changed = state(engine, account_id)
    dry = client.post(f"/v1/jobs/{job['id']}/revert?dry_run=true")
    assert dry.status_code == 200, dry.text
    assert dry.json()["conflicts"] == 0
    assert client.post(f"/v1/jobs/{job['id']}/revert/dry-run").json() == dry.json()

    undone = revert(client, job["id"])
    assert undone["status"] == "succeeded", undone
    assert undone["kind"] == "revert" and undone["reverts"] == job["id"]
    assert undone["conflicts"] == 0
    assert state(engine, account_id) == before
    assert client.get(f"/v1/jobs/{job['id']}").json()["reverted_by"] == undone["id"]
    # what the dry run said the revert would do, it did
    assert [a["affected"] for a in undone["actions"]] == [
        a["affected"] for a in dry.json()["actions"]
    ]
    assert dry.json()["total"] == undone["total"]
    assert sum(a["affected"] for a in job["actions"]) == 0 or undone["total"] > 0

    # a revert reverted re-applies what the job did, times and codes included
    again = revert(client, undone["id"])
    assert again["status"] == "succeeded" and again["conflicts"] == 0, again
    assert state(engine, account_id) == changed


def test_a_later_change_is_left_alone_and_counted(client, engine, account, ids):
    anna, jan, kim, bad = ids
    job = client.run({}, [{"type": "set_score", "mode": "set", "value": 50}])
    assert job["actions"][0]["affected"] == 4  # anna had 10; jan, kim, bad 0
    client.run(
        {"filter": {"field": "email", "op": "eq", "value": "jan@x.pl"}},
        [{"type": "set_score", "mode": "set", "value": 99}],
    )
    dry = client.post(f"/v1/jobs/{job['id']}/revert?dry_run=true").json()
    assert dry == {"total": 4, "actions": [{"type": "set_score", "affected": 3}], "conflicts": 1}
    undone = revert(client, job["id"])
    assert undone["conflicts"] == 1 and undone["actions"][0]["affected"] == 3
    scores = {c: client.get(f"/v1/contacts/{c}").json()["score"] for c in ids}
    assert scores == {anna: 10, jan: 99, kim: 0, bad: 0}
    out = list(csv.reader(io.StringIO(client.get(f"/v1/jobs/{undone['id']}/output").text)))
    assert out == [["contact_id", "email", "value"], [str(jan), "jan@x.pl", "99"]]


def test_tags_come_back_with_their_times_and_later_ones_stay(client, engine, account, ids):
    anna = ids[0]
    job = client.run({}, [{"type": "remove_tags", "tags": ["VIP"]}])
    client.run(
        {"filter": {"field": "email", "op": "eq", "value": "kim@x.pl"}},
        [{"type": "add_tags", "tags": ["vip"]}],
    )  # kim's VIP is back, with a new time: a conflict
    undone = revert(client, job["id"])
    assert undone["conflicts"] == 1 and undone["actions"][0]["affected"] == 1
    assert "VIP" in client.get(f"/v1/contacts/{anna}").json()["tags"]


def test_refusals(client, engine, account, ids):
    later = client.post(
        "/v1/jobs",
        json={
            "selection": {},
            "actions": [{"type": "add_tags", "tags": ["x"]}],
            "run_at": "2099-01-01T00:00:00Z",
        },
    ).json()
    r = client.post(f"/v1/jobs/{later['id']}/revert")
    assert r.status_code == 409 and "has not finished" in r.json()["error"]["message"]
    client.post(f"/v1/jobs/{later['id']}/cancel")

    job = client.run({}, [{"type": "add_tags", "tags": ["y"]}])
    first = submit_revert(client, job["id"])
    r = client.post(f"/v1/jobs/{job['id']}/revert")
    assert r.status_code == 409
    assert f"already has a revert: job {first['id']}" in r.json()["error"]["message"]
    assert client.post(f"/v1/jobs/{job['id']}/revert?dry_run=true").status_code == 409
    assert client.post("/v1/jobs/999999999/revert").status_code == 404

    other = client.run({}, [{"type": "add_tags", "tags": ["z"]}])
    with engine.begin() as conn:
        conn.execute(
            sa.update(t.jobs)
            .where(t.jobs.c.id == other["id"])
            .values(finished_at=t.utcnow() - timedelta(days=31))
        )
    with engine.begin() as conn:
        while repository.purge_change_log(conn, t.utcnow() - timedelta(days=30)):
            pass
    r = client.post(f"/v1/jobs/{other['id']}/revert")
    assert r.status_code == 410 and r.json()["error"]["code"] == "gone"
    with engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(t.change_log.c.job_id == other["id"])
        ).scalar_one()
    assert left == 0


def test_a_cancelled_job_reverts_what_it_applied(client, engine, account):
    client.load(*({"email": f"p{i}@x.pl", "score": 0} for i in range(2000)))
    before = state(engine, account[0])
    r = client.post(
        "/v1/jobs", json={"selection": {}, "actions": [{"type": "set_score", "value": 7}]}
    )
    job_id = r.json()["id"]
    while client.get(f"/v1/jobs/{job_id}").json()["processed"] == 0:
        pass
    client.post(f"/v1/jobs/{job_id}/cancel")
    job = client.wait(job_id)
    applied = job["actions"][0]["affected"]
    assert job["status"] == "cancelled" and 0 < applied < 2000, job
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 7}}) == applied
    undone = revert(client, job_id)
    assert undone["total"] == applied and undone["actions"][0]["affected"] == applied
    assert state(engine, account[0]) == before


def test_history_and_the_jobs_story(client, engine, account, ids):
    anna = ids[0]
    r = client.post(
        "/v1/jobs",
        json={
            "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]},
            "actions": [
                {"type": "set_email_opt_in", "value": False},
                {"type": "add_tags", "tags": ["Black Friday"]},
                {"type": "set_funnel_stage", "funnel": "Sales", "stage": "Lead"},
            ],
            "name": "Friday clean-up",
        },
    )
    assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    job = client.wait(r.json()["id"])
    assert job["name"] == "Friday clean-up" and job["kind"] == "actions"
    assert job["created_by"] == "default"
    assert job["selection"] == {"include": [{"type": "tag", "tags": ["VIP"]}]}
    assert job["actions"][0] == {"type": "set_email_opt_in", "value": False, "affected": 1}
    assert job["actions"][2]["funnel"] == "Sales" and job["reverts"] is None

    changes = client.get(f"/v1/contacts/{anna}/history").json()["changes"]
    assert [(c["action"], c["field"], c["before"], c["after"]) for c in changes] == [
        ("set_funnel_stage", "funnel:Sales", "Won", "Lead"),
        ("add_tags", "tag:Black Friday", False, True),
        ("set_email_opt_in", "email_opt_in", True, False),
    ]
    assert {c["job_id"] for c in changes} == {job["id"]}
    assert {c["created_by"] for c in changes} == {"default"} and changes[0]["kind"] == "actions"

    undone = revert(client, job["id"])
    page = client.get(f"/v1/contacts/{anna}/history?limit=2").json()
    assert [c["job_id"] for c in page["changes"]] == [undone["id"]] * 2
    rest = client.get(f"/v1/contacts/{anna}/history?before={page['next_before']}").json()
    assert len(rest["changes"]) == 4 and rest["next_before"] is None
    assert page["changes"][0]["kind"] == "revert"
    assert client.get("/v1/contacts/999999999/history").status_code == 404
    bad = client.get(f"/v1/contacts/{anna}/history?before=nonsense")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["path"] == "query.before"

    listed = client.get("/v1/jobs?kind=revert").json()["jobs"]
    assert [j["id"] for j in listed] == [undone["id"]]
    tagging = client.get("/v1/jobs?action=add_tags").json()["jobs"]
    assert [j["id"] for j in tagging] == [undone["id"], job["id"]]  # a revert names them too
    assert client.get("/v1/jobs?action=delete").json()["jobs"] == []
    assert client.get("/v1/jobs?status=failed").json()["jobs"] == []
    assert client.get("/v1/jobs?kind=nope").status_code == 422


def test_selection_is_required(client, ids):
    r = client.post("/v1/jobs?dry_run=true", json={"actions": [{"type": "delete"}]})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "selection"
    r = client.post("/v1/jobs/dry-run", json={"actions": [{"type": "delete"}]})
    assert r.status_code == 422
    r = client.post("/v1/jobs/dry-run", json={"selection": {}, "actions": [{"type": "delete"}]})
    assert r.status_code == 200 and r.json() == {
        "total": 4,
        "actions": [{"type": "delete", "affected": 4}],
    }


# --- a property: for random actions on random data, job then revert is the identity ---

ACTION = st.sampled_from(
    [a for actions, _, _ in ACTIONS for a in actions]
    + [a for actions in EXTRA[:3] for a in actions]
    + [{"type": "set_detail", "name": "n", "value": "v2"}, {"type": "add_to_group", "group": "G"}]
)
PERSON = st.fixed_dictionaries(
    {
        "score": st.integers(-5, 5),
        "email_opt_in": st.booleans(),
        "state": st.sampled_from(["PROSPECT", "CUSTOMER", "OTHER"]),
        "tags": st.lists(st.sampled_from(["VIP", "old", "new", "a"]), max_size=3),
        "details": st.dictionaries(st.sampled_from(["n", "plan"]), st.sampled_from(["v", "v2"])),
        "first_name": st.sampled_from(["Anna", "Jan", "Zzyzx", ""]),
        "groups": st.lists(st.sampled_from(["G", "Webinar"]), max_size=2),
    }
)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    persons=st.lists(PERSON, min_size=1, max_size=6),
    actions=st.lists(ACTION, min_size=1, max_size=5),
    subset=st.sampled_from(
        [
            {},
            {"include": [{"type": "tag", "tags": ["VIP"]}]},
            {"exclude": [{"type": "tag", "tags": ["old"]}]},
        ]
    ),
)
def test_job_then_revert_is_the_identity(api, engine, persons, actions, subset):
    import uuid

    from app.auth import create_account
    from tests.conftest import Scoped

    with engine.begin() as conn:
        account_id, key = create_account(conn, f"prop-{uuid.uuid4().hex[:8]}")
    client = Scoped(api, key)
    client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    client.load(
        {"email": "known@x.pl", "tags": ["VIP", "old"]},  # the subsets' tags exist
        *({"email": f"p{i}@x.pl", **p} for i, p in enumerate(persons)),
    )
    before = state(engine, account_id)
    job = client.run(subset, actions)
    assert job["status"] == "succeeded", job
    undone = revert(client, job["id"])
    assert undone["status"] == "succeeded" and undone["conflicts"] == 0, undone
    assert state(engine, account_id) == before


def test_run_rule_is_reverted_as_its_actions(client, engine, account, ids):
    inner = client.post(
        "/v1/rules",
        json={"name": "inner", "actions": [{"type": "set_detail", "name": "plan", "value": "x"}]},
    ).json()
    rule = client.post(
        "/v1/rules",
        json={
            "name": "outer",
            "condition": {"type": "tag", "tags": ["VIP"]},
            "actions": [
                {"type": "add_tags", "tags": ["ruled"]},
                {"type": "set_score", "mode": "add", "value": 3},
                {"type": "run_rule", "rule": inner["id"]},
            ],
        },
    ).json()
    before = state(engine, account[0])
    job = client.run(
        {},
        [
            {"type": "run_rule", "rule": rule["id"], "check_condition": True},
            {"type": "run_rule", "rule": rule["id"]},  # the same rule again: steps of its own
        ],
    )
    assert [a["affected"] for a in job["actions"]] == [2, 4], job
    undone = revert(client, job["id"])
    # the rule's actions, each a step of the revert, last first
    assert [a["type"] for a in undone["actions"]] == [
        "set_detail",
        "set_score",
        "add_tags",
        "set_detail",
        "set_score",
        "add_tags",
    ]
    assert state(engine, account[0]) == before


def test_a_row_changed_under_the_job_is_logged_with_its_new_value(
    client, engine, account, ids, db_url
):
    """PostgreSQL: the UPDATE that logs reads each row's value itself; a row another
    transaction changes while the job waits for it is done again with its new value, so
    the log's `before` is what the job really overwrote."""
    if not db_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL")
    import threading
    import time

    jan = ids[1]
    with engine.connect() as blocker:
        blocker.execute(sa.update(t.contacts).where(t.contacts.c.id == jan).values(state="OTHER"))
        r = client.post(
            "/v1/jobs",
            json={"selection": {}, "actions": [{"type": "set_state", "state": "PARTNER"}]},
        )
        job_id = r.json()["id"]
        commit = threading.Timer(1.0, blocker.commit)
        commit.start()
        time.sleep(1.5)
        commit.join()
    job = client.wait(job_id)
    assert job["status"] == "succeeded" and job["actions"][0]["affected"] == 4, job
    with engine.connect() as conn:
        before = conn.execute(
            sa.select(t.change_log.c.before).where(
                t.change_log.c.job_id == job_id, t.change_log.c.contact_id == jan
            )
        ).scalar_one()
    assert before == "OTHER"
    revert(client, job_id)
    assert client.get(f"/v1/contacts/{jan}").json()["state"] == "OTHER"
