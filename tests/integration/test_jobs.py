"""Jobs and every action: effect on the data, `affected`, dry run, 422s, idempotency,
cancel, scheduling, output, overlapping jobs and resuming after a dead worker."""

import csv
import io
import json
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from app import tables as t
from app.auth import create_account
from tests.conftest import Scoped

ALL = {}
PEOPLE = [
    {
        "email": "anna@x.pl",
        "first_name": "Anna",
        "tags": ["VIP"],
        "score": 10,
        "email_opt_in": True,
        "state": "CUSTOMER",
        "details": {"plan": "gold"},
    },
    {"email": "jan@x.pl", "first_name": "Jan", "score": 0},
    {"email": "kim@x.pl", "first_name": "Kim", "sex": "female", "tags": ["vip", "old"]},
    {"email": "bad..dots@x.pl", "first_name": "Zzyzx"},
]


@pytest.fixture
def people(client):
    client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    client.load(*PEOPLE)
    client.load(
        {
            "email": "anna@x.pl",
            "funnels": {"Sales": "Won"},
            "owners": ["rep@x.com"],
            "groups": ["Webinar"],
        }
    )
    return dict(
        zip(["anna", "jan", "kim", "bad"], client.ids(*(p["email"] for p in PEOPLE)), strict=True)
    )


def contact(client, cid):
    return client.get(f"/v1/contacts/{cid}").json()


# (actions, affected per action, check(contacts by name) -> bool)
ACTIONS = [
    (
        [{"type": "set_email_opt_in", "value": True}],
        [3],
        lambda c: all(x["email_opt_in"] for x in c.values()),
    ),
    (
        [{"type": "set_email_opt_in", "value": False}],
        [1],
        lambda c: not any(x["email_opt_in"] for x in c.values()),
    ),
    (
        [{"type": "set_phone_opt_in", "value": True}],
        [4],
        lambda c: all(x["phone_opt_in"] for x in c.values()),
    ),
    (
        [{"type": "set_email_valid", "value": False}],
        [4],
        lambda c: not any(x["email_valid"] for x in c.values()),
    ),
    (
        [{"type": "set_state", "state": "customer"}],
        [3],
        lambda c: {x["state"] for x in c.values()} == {"CUSTOMER"},
    ),
    (
        [{"type": "set_score", "mode": "set", "value": 10}],
        [3],
        lambda c: {x["score"] for x in c.values()} == {10},
    ),
    (
        [{"type": "set_score", "mode": "add", "value": -3}],
        [4],
        lambda c: c["anna"]["score"] == 7 and c["jan"]["score"] == -3,
    ),
    ([{"type": "set_score", "mode": "add", "value": 0}], [0], lambda c: c["anna"]["score"] == 10),
    ([{"type": "delete"}], [4], lambda c: all(x["deleted"] for x in c.values())),
    ([{"type": "undelete"}], [0], lambda c: not any(x["deleted"] for x in c.values())),
    (
        [{"type": "delete"}, {"type": "undelete"}],
        [4, 4],
        lambda c: not any(x["deleted"] for x in c.values()),
    ),
    (
        [{"type": "add_tags", "tags": ["VIP", "new"]}],
        [4],
        lambda c: all({"new"} <= set(x["tags"]) for x in c.values()),
    ),
    (
        [{"type": "add_tags", "tags": ["vip"]}],
        [2],
        lambda c: all("VIP" in x["tags"] for x in c.values()),
    ),
    (
        [{"type": "remove_tags", "tags": ["VIP", "nope"]}],
        [2],
        lambda c: not any("VIP" in x["tags"] for x in c.values()) and c["kim"]["tags"] == ["old"],
    ),
    (
        [{"type": "add_owner", "owner": "Rep@x.com"}],
        [3],
        lambda c: all(x["owners"] == ["rep@x.com"] for x in c.values()),
    ),
    (
        [{"type": "remove_owner", "owner": "rep@x.com"}],
        [1],
        lambda c: not any(x["owners"] for x in c.values()),
    ),
    ([{"type": "remove_owner", "owner": "nobody@x.com"}], [0], lambda c: True),
    (
        [{"type": "set_funnel_stage", "funnel": "sales", "stage": "WON"}],
        [3],
        lambda c: all(x["funnels"] == {"Sales": "Won"} for x in c.values()),
    ),
    (
        [{"type": "set_funnel_stage", "funnel": "Sales", "stage": "Lead"}],
        [4],
        lambda c: all(x["funnels"] == {"Sales": "Lead"} for x in c.values()),
    ),
    (
        [{"type": "remove_from_funnel", "funnel": "Sales"}],
        [1],
        lambda c: not any(x["funnels"] for x in c.values()),
    ),
    (
        [{"type": "add_to_group", "group": "webinar"}],
        [3],
        lambda c: all(x["groups"] == ["Webinar"] for x in c.values()),
    ),
    (
        [{"type": "add_to_group", "group": "Brand new"}],
        [4],
        lambda c: all("Brand new" in x["groups"] for x in c.values()),
    ),
    (
        [{"type": "remove_from_group", "group": "WEBINAR"}],
        [1],
        lambda c: not any(x["groups"] for x in c.values()),
    ),
    ([{"type": "remove_from_group", "group": "missing"}], [0], lambda c: True),
    (
        [{"type": "set_detail", "name": "plan", "value": "gold"}],
        [3],
        lambda c: all(x["details"]["plan"] == "gold" for x in c.values()),
    ),
    (
        [{"type": "set_detail", "name": "plan", "value": "silver"}],
        [4],
        lambda c: all(x["details"]["plan"] == "silver" for x in c.values()),
    ),
    (
        [{"type": "delete_detail", "name": "plan"}],
        [1],
        lambda c: not any(x["details"] for x in c.values()),
    ),
    (
        [{"type": "delete_detail", "name": "Plan"}],
        [0],
        lambda c: c["anna"]["details"] == {"plan": "gold"},
    ),
    (
        [{"type": "identify_sex"}],
        [2],
        lambda c: (
            (c["anna"]["sex"], c["jan"]["sex"], c["kim"]["sex"], c["bad"]["sex"])
            == ("female", "male", "female", "unknown")
        ),
    ),
    (
        [{"type": "invalidate_bad_emails"}],
        [1],
        lambda c: [n for n, x in c.items() if not x["email_valid"]] == ["bad"],
    ),
]


@pytest.mark.parametrize(
    ("actions", "affected", "check"),
    ACTIONS,
    ids=[" ".join(a["type"] for a in x[0]) + f"-{i}" for i, x in enumerate(ACTIONS)],
)
def test_action(client, people, actions, affected, check):
    dry = client.post("/v1/jobs?dry_run=true", json={"selection": {}, "actions": actions})
    assert dry.status_code == 200, dry.text
    assert dry.json()["total"] == 4
    if len(actions) == 1:  # dry run: each action alone on today's data
        assert [a["affected"] for a in dry.json()["actions"]] == affected
    job = client.run({}, actions)
    assert job["status"] == "succeeded", job
    assert (job["total"], job["processed"]) == (4, 4)
    assert [a["affected"] for a in job["actions"]] == affected
    assert [a["type"] for a in job["actions"]] == [a["type"] for a in actions]
    assert check({name: contact(client, cid) for name, cid in people.items()})
    again = client.run({"deleted": "include"}, actions)  # idempotent: nothing left to change
    if (
        not any(a["type"] in ("set_score",) and a.get("mode") == "add" for a in actions)
        and len(actions) == 1
    ):
        assert [a["affected"] for a in again["actions"]] == [0]


RETRIED = [
    *ACTIONS,
    ([{"type": "generate_coupons", "name": "R", "length": 8}], [4], lambda c: True),
    ([{"type": "generate_links", "url": "https://x.example/{token}"}], [4], lambda c: True),
]


@pytest.mark.parametrize(
    ("actions", "affected", "check"),
    RETRIED,
    ids=[" ".join(a["type"] for a in x[0]) + f"-{i}" for i, x in enumerate(RETRIED)],
)
def test_action_on_a_retried_chunk(client, people, actions, affected, check, monkeypatch):
    """Every chunk fails once after its actions ran (as a deadlock or a busy database
    would) and is retried: the result and `affected` are those of one clean run."""
    from sqlalchemy.exc import OperationalError

    from app.jobs import runner as job_runner

    real, failed = job_runner._chunk, set()

    def fails_once(conn, row, handlers, settings, owner, size):
        outcome = real(conn, row, handlers, settings, owner, size)
        if (row.id, outcome) not in failed:
            failed.add((row.id, outcome))
            raise OperationalError("chunk", {}, Exception("database is locked (injected)"))
        return outcome

    monkeypatch.setattr(job_runner, "_chunk", fails_once)
    job = client.run({}, actions)
    assert job["status"] == "succeeded", job
    assert failed, "no chunk was retried"
    assert [a["affected"] for a in job["actions"]] == affected
    assert check({name: contact(client, cid) for name, cid in people.items()})
    if actions[0]["type"] in ("generate_coupons", "generate_links"):
        rows = client.get(f"/v1/jobs/{job['id']}/output").text.splitlines()[1:]
        assert len(rows) == len(people)  # one a contact, not one an attempt


def test_identify_sex_overwrite(client, people):
    client.load({"email": "jan@x.pl", "sex": "female"})
    job = client.run({}, [{"type": "identify_sex", "overwrite": True}])
    assert job["actions"][0]["affected"] == 2  # anna unknown→female, jan female→male
    assert contact(client, people["jan"])["sex"] == "male"


def test_coupons_unique_replaced_and_listed(client, people):
    job = client.run(
        {}, [{"type": "generate_coupons", "name": "BF", "length": 8, "valid_days": 30}]
    )
    assert job["actions"] == [
        {"type": "generate_coupons", "name": "BF", "length": 8, "valid_days": 30, "affected": 4}
    ]
    r = client.get(f"/v1/jobs/{job['id']}/output")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {int(x["contact_id"]) for x in rows} == set(people.values())
    codes = [x["value"] for x in rows]
    assert len(set(codes)) == 4 and all(len(c) == 8 for c in codes)
    assert all(ch not in "0O1IL" for c in codes for ch in c)
    assert {x["email"] for x in rows} == {p["email"] for p in PEOPLE}
    job2 = client.run({}, [{"type": "generate_coupons", "name": "bf", "length": 12}])
    assert job2["actions"][0]["affected"] == 4


def test_coupon_codes_stay_unique_across_concurrent_jobs(client):
    client.load(*({"email": f"c{i}@x.com"} for i in range(300)))
    ids = [
        client.post(
            "/v1/jobs",
            json={
                "selection": {},
                "actions": [{"type": "generate_coupons", "name": f"C{k}", "length": 5}],
            },
        ).json()["id"]
        for k in range(2)
    ]
    codes = []
    for job_id in ids:
        assert client.wait(job_id)["status"] == "succeeded"
        codes += [
            row.split(",")[2]
            for row in client.get(f"/v1/jobs/{job_id}/output").text.strip().splitlines()[1:]
        ]
    assert len(codes) == 600 and len(set(codes)) == 600


def test_links_are_personal_stable_and_verifiable(api, client, people):
    job = client.run({}, [{"type": "generate_links", "url": "https://shop.example/p?t={token}"}])
    assert job["actions"][0]["affected"] == 4
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job['id']}/output").text)))
    urls = {int(r["contact_id"]): r["value"] for r in rows}
    assert len(set(urls.values())) == 4
    token = urls[people["kim"]].split("t=")[1]
    r = client.get(f"/v1/links/{token}").json()
    assert r["contact_id"] == people["kim"] and r["email"] == "kim@x.pl"
    assert client.get("/v1/links/forged").status_code == 404


@pytest.mark.parametrize(
    ("action", "path"),
    [
        ({"type": "set_funnel_stage", "funnel": "Nope", "stage": "Won"}, "actions[1].funnel"),
        ({"type": "set_funnel_stage", "funnel": "Sales", "stage": "Nope"}, "actions[1].stage"),
        ({"type": "set_funnel_stage", "funnel": "Sales"}, "actions[1].stage"),
        ({"type": "remove_from_funnel", "funnel": "Nope"}, "actions[1].funnel"),
        ({"type": "run_rule", "rule": 999999}, "actions[1].rule"),
        ({"type": "add_tags", "tags": []}, "actions[1].tags"),
        ({"type": "set_score", "mode": "multiply", "value": 2}, "actions[1].mode"),
        ({"type": "set_score", "value": "2"}, "actions[1].value"),
        ({"type": "generate_coupons", "name": "X", "length": 4}, "actions[1].length"),
        ({"type": "generate_coupons", "name": "X", "length": 65}, "actions[1].length"),
        ({"type": "generate_links", "url": "https://x.example/"}, "actions[1].url"),
        ({"type": "set_state", "state": "LOST"}, "actions[1].state"),
        ({"type": "add_owner", "owner": "nope"}, "actions[1].owner"),
        ({"type": "explode"}, "actions[1].type"),  # an unknown kind: at its `type` key
        ({"type": "delete", "hard": True}, "actions[1].hard"),
    ],
)
def test_bad_action_is_422_at_submit(client, people, action, path):
    # The first action is fine: it must not run either ('old' stays on Kim alone).
    body = {"selection": {}, "actions": [{"type": "add_tags", "tags": ["old"]}, action]}
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert path in [d["path"] for d in r.json()["error"]["details"]], r.json()
    assert client.get("/v1/jobs").json()["jobs"] == []
    assert client.count({"include": [{"type": "tag", "tags": ["old"]}]}) == 1


def test_bad_selection_in_job_names_its_path(client):
    r = client.post(
        "/v1/jobs",
        json={
            "selection": {"filter": {"field": "score", "op": "gt", "value": "x"}},
            "actions": [{"type": "delete"}],
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "selection.filter.value"


def test_expected_total_guard(client, people):
    body = {"selection": {}, "actions": [{"type": "delete"}], "expected_total": 3}
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 409
    assert r.json()["error"]["total"] == 4
    assert client.count({}) == 4
    body["expected_total"] = 4
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202
    assert client.wait(r.json()["id"])["status"] == "succeeded"
    assert client.count({}) == 0


def test_idempotency_key(client, people):
    body = {"selection": {}, "actions": [{"type": "set_score", "mode": "add", "value": 1}]}
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/v1/jobs", json=body, headers=headers)
    second = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    client.wait(first.json()["id"])
    assert contact(client, people["anna"])["score"] == 11  # applied once
    other = client.post("/v1/jobs", json={**body, "actions": [{"type": "delete"}]}, headers=headers)
    assert other.status_code == 409
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1


def test_run_at_schedules_and_cancel_queued(client, people):
    r = client.post(
        "/v1/jobs",
        json={"selection": {}, "actions": [{"type": "delete"}], "run_at": "2099-01-01T00:00:00Z"},
    )
    job = r.json()
    time.sleep(0.3)
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert client.count({}) == 4
    soon = client.post(
        "/v1/jobs",
        json={"selection": {}, "actions": [{"type": "delete"}], "run_at": "2020-01-01T00:00:00Z"},
    ).json()
    assert client.wait(soon["id"])["status"] == "succeeded"


def test_cancel_running_job_keeps_what_was_applied(client):
    client.load(*({"email": f"u{i}@x.com"} for i in range(6000)))
    job = client.post(
        "/v1/jobs",
        json={
            "selection": {},
            "actions": [
                {"type": "set_score", "mode": "add", "value": 1},
                {"type": "set_detail", "name": "n", "value": "v"},
                {"type": "add_tags", "tags": ["a", "b", "c"]},
            ],
        },
    ).json()
    deadline = time.monotonic() + 30
    while client.get(f"/v1/jobs/{job['id']}").json()["processed"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    client.post(f"/v1/jobs/{job['id']}/cancel")
    done = client.wait(job["id"])
    assert done["status"] == "cancelled"
    assert 0 < done["processed"] < 6000
    assert (
        client.count({"filter": {"field": "score", "op": "eq", "value": 1}})
        == done["processed"]
        == done["actions"][0]["affected"]
    )


def test_overlapping_jobs_each_apply_once(client):
    client.load(*({"email": f"o{i}@x.com"} for i in range(300)))
    body = {
        "selection": {},
        "actions": [
            {"type": "set_score", "mode": "add", "value": 1},
            {"type": "add_tags", "tags": ["both"]},
        ],
    }
    ids = [client.post("/v1/jobs", json=body).json()["id"] for _ in range(3)]
    jobs = [client.wait(i) for i in ids]
    assert all(j["status"] == "succeeded" for j in jobs)
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 3}}) == 300
    assert sum(j["actions"][1]["affected"] for j in jobs) == 300


def test_list_jobs_newest_first_paginated(client, people):
    ids = [
        client.post(
            "/v1/jobs",
            json={
                "selection": {},
                "actions": [{"type": "set_state", "state": "OTHER"}],
                "run_at": "2099-01-01T00:00:00Z",
            },
        ).json()["id"]
        for _ in range(5)
    ]
    page = client.get("/v1/jobs?limit=2").json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    page2 = client.get(f"/v1/jobs?limit=2&before={page['next_before']}").json()
    assert [j["id"] for j in page2["jobs"]] == ids[::-1][2:4]
    assert client.get("/v1/jobs?limit=0").status_code == 422


def test_job_snapshot_is_fixed_when_it_starts(client, people):
    job = client.run(
        {"include": [{"type": "tag", "tags": ["VIP"]}]},
        [{"type": "remove_tags", "tags": ["VIP"]}, {"type": "add_tags", "tags": ["was-vip"]}],
    )
    assert job["total"] == 2 and job["actions"][1]["affected"] == 2


def test_rules_run_with_and_without_condition(client, people):
    r = client.post(
        "/v1/rules",
        json={
            "name": "Reward",
            "condition": {"field": "score", "op": "gt", "value": 5},
            "actions": [
                {"type": "add_tags", "tags": ["rewarded"]},
                {"type": "set_score", "mode": "add", "value": 1},
            ],
        },
    )
    assert r.status_code == 201, r.text
    rule = r.json()
    job = client.run({}, [{"type": "run_rule", "rule": rule["id"], "check_condition": True}])
    assert job["actions"] == [
        {"type": "run_rule", "rule": rule["id"], "check_condition": True, "affected": 1}
    ]
    assert client.count({"include": [{"type": "tag", "tags": ["rewarded"]}]}) == 1
    job = client.run({}, [{"type": "run_rule", "rule": rule["id"]}])
    assert job["actions"][0]["affected"] == 4
    dry = client.post(
        "/v1/jobs?dry_run=true",
        json={
            "selection": {},
            "actions": [{"type": "run_rule", "rule": rule["id"], "check_condition": True}],
        },
    ).json()
    assert dry["actions"][0]["affected"] == 1  # only anna (score 12) passes; all change


def test_rule_conditions_use_saved_segments(client, people):
    """A rule's condition may name saved segments: they must exist when it is saved, and
    run_rule with check_condition selects through them."""
    bad = {"name": "R", "condition": {"type": "segment", "segments": ["nope"]}, "actions": []}
    bad["actions"] = [{"type": "add_tags", "tags": ["seg"]}]
    r = client.post("/v1/rules", json=bad)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == "condition.segments"
    seg = {"name": "Rich", "selection": {"filter": {"field": "score", "op": "gt", "value": 5}}}
    assert client.post("/v1/segments", json=seg).status_code == 201
    rule = client.post(
        "/v1/rules",
        json={
            "name": "R",
            "condition": {"or": [{"type": "segment", "segments": ["rich"]}]},
            "actions": [{"type": "add_tags", "tags": ["seg"]}],
        },
    )
    assert rule.status_code == 201, rule.text
    action = {"type": "run_rule", "rule": rule.json()["id"], "check_condition": True}
    dry = client.post("/v1/jobs?dry_run=true", json={"selection": {}, "actions": [action]})
    assert dry.status_code == 200, dry.text
    assert dry.json()["actions"][0]["affected"] == 1
    job = client.run({}, [action])
    assert job["status"] == "succeeded", job
    assert job["actions"][0]["affected"] == 1
    assert client.count({"include": [{"type": "tag", "tags": ["seg"]}]}) == 1


def test_rule_crud_and_loops(client):
    a = client.post("/v1/rules", json={"name": "A", "actions": [{"type": "delete"}]}).json()
    b = client.post(
        "/v1/rules", json={"name": "B", "actions": [{"type": "run_rule", "rule": a["id"]}]}
    ).json()
    r = client.put(
        f"/v1/rules/{a['id']}",
        json={"name": "A", "actions": [{"type": "run_rule", "rule": b["id"]}]},
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"].startswith(
        "actions[0].rule"
    )
    r = client.put(
        f"/v1/rules/{a['id']}",
        json={"name": "A", "actions": [{"type": "run_rule", "rule": a["id"]}]},
    )
    assert r.status_code == 422
    assert (
        client.post("/v1/rules", json={"name": "a", "actions": [{"type": "delete"}]}).status_code
        == 409
    )
    r = client.post(
        "/v1/rules",
        json={"name": "C", "condition": {"field": "nope"}, "actions": [{"type": "delete"}]},
    )
    assert r.status_code == 422
    assert [x["name"] for x in client.get("/v1/rules").json()] == ["A", "B"]
    assert client.get(f"/v1/rules/{a['id']}").json()["actions"] == [{"type": "delete"}]
    assert client.delete(f"/v1/rules/{b['id']}").status_code == 204
    assert client.get(f"/v1/rules/{b['id']}").status_code == 404


def test_other_account_cannot_touch_jobs(api, engine, client, people):
    job = client.run({}, [{"type": "add_tags", "tags": ["mine"]}])
    with engine.begin() as conn:
        _, key = create_account(conn, "intruder")
    other = Scoped(api, key)
    assert other.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert other.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    assert other.get(f"/v1/jobs/{job['id']}/output").status_code == 404
    # a job of the other account with an all-contacts selection touches only its own
    done = other.run({}, [{"type": "delete"}])
    assert done["total"] == 0
    assert client.count({}) == 4


def test_dead_worker_job_resumes_exactly_once(client, engine, api):
    """A worker dies after two committed chunks; the runner resumes after the last
    committed chunk and no contact is changed twice."""
    from app.jobs import runner as job_runner

    client.load(*({"email": f"r{i}@x.com"} for i in range(100)))
    job_id = client.post(
        "/v1/jobs",
        json={
            "selection": {},
            "actions": [{"type": "set_score", "mode": "add", "value": 1}],
            "run_at": "2099-01-01T00:00:00Z",
        },
    ).json()["id"]
    with engine.begin() as conn:
        # the "dead" worker's claim: its lease keeps the runner away while it works
        conn.execute(
            sa.update(t.jobs)
            .where(t.jobs.c.id == job_id)
            .values(
                run_at=None,
                status="running",
                lease_owner="dead",
                attempts=1,
                started_at=t.utcnow(),
                lease_until=t.utcnow().replace(year=2099),
            )
        )
    settings = api.app.state.settings
    with engine.begin() as conn:
        row = conn.execute(sa.select(t.jobs).where(t.jobs.c.id == job_id)).one()
    job_runner._snapshot(engine, row, "dead")
    with engine.begin() as conn:
        row = conn.execute(sa.select(t.jobs).where(t.jobs.c.id == job_id)).one()
    handlers = job_runner._handlers(engine, row)
    for _ in range(2):
        job_runner._with_retries(
            engine, lambda conn: job_runner._chunk(conn, row, handlers, settings, "dead", 7)
        )
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == 14
    with engine.begin() as conn:  # the worker is gone: its lease expires
        conn.execute(
            sa.update(t.jobs)
            .where(t.jobs.c.id == job_id)
            .values(lease_until=t.utcnow().replace(year=2000))
        )
    job = client.wait(job_id)
    assert job["status"] == "succeeded" and job["processed"] == 100
    assert job["actions"][0]["affected"] == 100
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == 100
    assert job["attempts"] == 2


def test_concurrent_submissions_with_one_key_make_one_job(client, people):
    body = {"selection": {}, "actions": [{"type": "set_score", "mode": "add", "value": 5}]}
    answers = []

    def submit():
        answers.append(client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    client.wait(answers[0].json()["id"])
    assert contact(client, people["jan"])["score"] == 5


ALL.update(ACTIONS=ACTIONS)


def test_chunks_past_the_databases_parameter_limits(solo_app, engine):
    """A chunk of 40,000 contacts: more ids than SQLite takes parameters (32,766) and more
    coupon values than PostgreSQL does (65,535), so every action must bind a chunk as one
    array, never a parameter a value."""
    with engine.begin() as conn:
        _, key = create_account(conn, f"big-{uuid.uuid4().hex[:6]}")
    client = Scoped(solo_app(job_chunk_size=50_000), key)
    n = 40_000
    for start in range(0, n, 10_000):
        client.load(*({"email": f"c{i}@big.example"} for i in range(start, start + 10_000)))
    job = client.run(
        {},
        [
            {"type": "add_tags", "tags": ["big"]},
            {"type": "set_score", "mode": "add", "value": 2},
            {"type": "generate_coupons", "name": "BIG", "length": 10},
            {"type": "generate_links", "url": "https://x.example/{token}"},
        ],
        timeout=300,
    )
    assert job["status"] == "succeeded", job
    assert [a["affected"] for a in job["actions"]] == [n] * 4
    assert client.count({"include": [{"type": "tag", "tags": ["big"]}]}) == n
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 2}}) == n
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job['id']}/output").text)))
    coupons = [r["value"] for r in rows if len(r["value"]) == 10]
    assert len(coupons) == len(set(coupons)) == n
    links = [r["value"] for r in rows if r["value"].startswith("https://x.example/")]
    assert len(set(links)) == n


def test_finished_jobs_snapshots_are_purged(client, engine):
    """A finished job's members are deleted in the background, a batch at a time; its
    counters and output stay."""
    from app.jobs.repository import purge_snapshot

    client.load(*({"email": f"p{i}@x.com"} for i in range(30)))
    job = client.run({}, [{"type": "generate_coupons", "name": "P", "length": 8}])
    jm = t.job_members

    def members() -> int:
        with engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(jm.c.job_id == job["id"])
            ).scalar_one()

    with engine.begin() as conn:  # the runner may be purging too: take small bites
        while purge_snapshot(conn, batch=7):
            pass
    deadline = time.monotonic() + 10
    while members() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert members() == 0
    with engine.connect() as conn:
        held = conn.execute(sa.select(t.jobs.c.snapshot_taken).where(t.jobs.c.id == job["id"]))
        assert held.scalar_one() is False
    again = client.get(f"/v1/jobs/{job['id']}").json()
    assert (again["status"], again["total"], again["processed"]) == ("succeeded", 30, 30)
    assert len(client.get(f"/v1/jobs/{job['id']}/output").text.splitlines()) == 31


def test_rules_multiplied_by_reuse_are_refused_at_once(client):
    """A rule running another a hundred times, itself run a hundred times…: refused when
    saved (and so never submitted), by counting each rule's size once."""
    from app.actions.base import MAX_EXPANDED_ACTIONS

    leaf = client.post("/v1/rules", json={"name": "leaf", "actions": [{"type": "delete"}]})
    times_100 = [{"type": "run_rule", "rule": leaf.json()["id"]}] * 100
    middle = client.post("/v1/rules", json={"name": "middle", "actions": times_100})
    assert middle.status_code == 201, middle.text  # 100 + 100 actions
    started = time.monotonic()
    times_100 = [{"type": "run_rule", "rule": middle.json()["id"]}] * 100
    top = client.post("/v1/rules", json={"name": "top", "actions": times_100})
    assert time.monotonic() - started < 5
    assert top.status_code == 422, top.text
    detail = top.json()["error"]["details"][0]
    assert detail["path"].startswith("actions[") and str(MAX_EXPANDED_ACTIONS) in detail["message"]
    r = client.post("/v1/jobs?dry_run=true", json={"selection": {}, "actions": times_100})
    assert r.status_code == 422, r.text


def test_a_rule_condition_has_the_size_limits_of_a_selection(client):
    deep: dict = {"field": "score", "op": "gt", "value": 1}
    for _ in range(70):
        deep = {"not": deep}
    wide = {"or": [{"field": "score", "op": "eq", "value": i} for i in range(2_001)]}
    for condition in (deep, wide):
        r = client.post(
            "/v1/rules",
            json={"name": "big", "condition": condition, "actions": [{"type": "delete"}]},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["path"].startswith("condition")


def test_live_progress_as_server_sent_events(client, people):
    r = client.post(
        "/v1/jobs", json={"selection": {}, "actions": [{"type": "add_tags", "tags": ["live"]}]}
    )
    job_id = r.json()["id"]
    events = []
    with client._client.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers=client.headers
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    assert events and events[-1]["status"] == "succeeded" and events[-1]["id"] == job_id
    assert [e["processed"] for e in events] == sorted(e["processed"] for e in events)
    assert client.get("/v1/jobs/999999999/events").status_code == 404
