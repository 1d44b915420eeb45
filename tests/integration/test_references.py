"""References cannot dangle: renaming or deleting a group, segment or rule that a saved
segment or rule refers to is a 409 `in_use` naming every referrer; unreferenced ones
change as before; a save and a delete racing each other never leave a dangling name."""

import threading
import uuid

import pytest

from app import references
from app.auth import create_account
from app.catalog import service as catalog
from app.db import for_account
from app.rules import service as rules
from app.rules.schemas import RuleIn
from app.selection import segments
from app.selection.schemas import SegmentIn
from tests.conftest import Scoped


def _made(r, status: int = 201) -> int:
    assert r.status_code == status, r.text
    return r.json()["id"]


def _in_use(r, verb: str, what: str) -> list[dict]:
    """The details of a 409 in_use, after checking its body."""
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "in_use"
    assert error["message"].startswith(f"cannot {verb} {what}: "), error["message"]
    return error["details"]


def _group(client, name: str) -> int:
    return _made(client.post("/v1/groups", json={"name": name}))


def _segment(client, name: str, selection: dict) -> int:
    return _made(client.post("/v1/segments", json={"name": name, "selection": selection}))


def _rule(client, name: str, actions: list[dict], condition: dict | None = None) -> int:
    body = {"name": name, "actions": actions}
    if condition is not None:
        body["condition"] = condition
    return _made(client.post("/v1/rules", json=body))


TAG = [{"type": "add_tags", "tags": ["x"]}]


def test_unreferenced_groups_segments_and_rules_rename_and_delete_as_before(client):
    client.load({"email": "a@example.com", "groups": ["Lonely"], "tags": ["x"]})
    group = client.get("/v1/groups").json()[0]["id"]
    segment = _segment(client, "Alone", {"include": [{"type": "tag", "tags": ["x"]}]})
    rule = _rule(client, "Solo", TAG)
    # a referrer of another name, and of a rule that is not this one, does not count
    _group(client, "Other")
    _segment(client, "Elsewhere", {"include": [{"type": "group", "groups": ["Other"]}]})
    _rule(client, "Runner", [{"type": "run_rule", "rule": _rule(client, "Runs", TAG)}])

    r = client.put(f"/v1/groups/{group}", json={"name": "Renamed"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    r = client.put(f"/v1/segments/{segment}", json={"name": "Renamed", "selection": {}})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    r = client.put(f"/v1/rules/{rule}", json={"name": "Renamed", "actions": TAG})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    for url in (f"/v1/groups/{group}", f"/v1/segments/{segment}", f"/v1/rules/{rule}"):
        assert client.delete(url).status_code == 204
        assert client.get(url).status_code == 404
        assert client.delete(url).status_code == 404


def test_a_group_in_use_is_neither_renamed_nor_deleted(client):
    client.load({"email": "a@example.com", "groups": ["Blacklist"], "tags": ["x"]})
    group = client.get("/v1/groups").json()[0]["id"]
    s1 = _segment(client, "VIP buyers", {"exclude": [{"type": "group", "groups": ["BLACKLIST"]}]})
    nested = {
        "and": [
            {"field": "score", "op": "gte", "value": 1},
            {
                "not": {
                    "or": [
                        {"type": "tag", "tags": ["x"]},
                        {"type": "group", "groups": ["Other", "blacklist"]},
                    ]
                }
            },
        ]
    }
    _group(client, "Other")
    s2 = _segment(client, "Deep", {"filter": nested})
    r1 = _rule(client, "Guarded", TAG, {"type": "group", "groups": ["Blacklist"]})
    r2 = _rule(client, "Adds", [*TAG, {"type": "add_to_group", "group": "Blacklist"}])
    r3 = _rule(client, "Removes", [{"type": "remove_from_group", "group": "Blacklist"}])

    details = _in_use(
        client.put(f"/v1/groups/{group}", json={"name": "Blocklist"}),
        "rename",
        "group 'Blacklist'",
    )
    assert details == [
        {
            "path": f"segments/{s1}",
            "message": "segment 'VIP buyers' uses group 'Blacklist' at selection.exclude[0].groups[0]",
        },
        {
            "path": f"segments/{s2}",
            "message": "segment 'Deep' uses group 'Blacklist' at "
            "selection.filter.and[1].not.or[1].groups[1]",
        },
        {
            "path": f"rules/{r1}",
            "message": "rule 'Guarded' uses group 'Blacklist' at condition.groups[0]",
        },
        {
            "path": f"rules/{r2}",
            "message": "rule 'Adds' uses group 'Blacklist' at actions[1].group",
        },
        {
            "path": f"rules/{r3}",
            "message": "rule 'Removes' uses group 'Blacklist' at actions[0].group",
        },
    ]
    r = client.delete(f"/v1/groups/{group}")
    assert _in_use(r, "delete", "group 'Blacklist'") == details
    assert (
        "'VIP buyers', segment 'Deep', rule 'Guarded' and 2 more use it"
        in r.json()["error"]["message"]
    )
    # nothing changed; the segments still count what they counted
    found = client.get(f"/v1/groups/{group}").json()
    assert (found["name"], found["members"]) == ("Blacklist", 1)
    assert client.count({"include": [{"type": "segment", "segments": ["VIP buyers"]}]}) == 0

    # a change of case names the same group: free
    r = client.put(f"/v1/groups/{group}", json={"name": "BlackList"})
    assert r.status_code == 200 and r.json()["name"] == "BlackList"

    # one referrer left: the message says so; none left: the delete goes through
    for url in (f"/v1/segments/{s1}", f"/v1/segments/{s2}", f"/v1/rules/{r1}", f"/v1/rules/{r2}"):
        assert client.delete(url).status_code == 204
    r = client.delete(f"/v1/groups/{group}")
    assert _in_use(r, "delete", "group 'BlackList'") == [
        {
            "path": f"rules/{r3}",
            "message": "rule 'Removes' uses group 'BlackList' at actions[0].group",
        }
    ]
    assert r.json()["error"]["message"].endswith(
        "rule 'Removes' uses it; change or delete them first"
    )
    r = client.put(f"/v1/rules/{r3}", json={"name": "Removes", "actions": TAG})
    assert r.status_code == 200
    assert client.delete(f"/v1/groups/{group}").status_code == 204


def test_a_segment_in_use_keeps_its_name_and_stays(client):
    client.load({"email": "a@example.com", "tags": ["x"]})
    a = _segment(client, "Buyers", {"include": [{"type": "tag", "tags": ["x"]}]})
    b = _segment(client, "Loyal buyers", {"include": [{"type": "segment", "segments": ["buyers"]}]})
    rule = _rule(client, "Reward", TAG, {"not": {"type": "segment", "segments": ["Buyers"]}})

    details = _in_use(
        client.put(f"/v1/segments/{a}", json={"name": "Shoppers", "selection": {}}),
        "rename",
        "segment 'Buyers'",
    )
    assert details == [
        {
            "path": f"segments/{b}",
            "message": "segment 'Loyal buyers' uses segment 'Buyers' at selection.include[0].segments[0]",
        },
        {
            "path": f"rules/{rule}",
            "message": "rule 'Reward' uses segment 'Buyers' at condition.not.segments[0]",
        },
    ]
    assert client.get(f"/v1/segments/{a}").json()["selection"] == {
        "include": [{"type": "tag", "tags": ["x"]}]
    }
    assert _in_use(client.delete(f"/v1/segments/{a}"), "delete", "segment 'Buyers'") == details
    # its selection may change under the same name (or the same name in another case)
    r = client.put(f"/v1/segments/{a}", json={"name": "BUYERS", "selection": {}})
    assert r.status_code == 200 and r.json()["selection"] == {}
    # a segment in use may itself use others, and be renamed when nothing uses it
    assert client.delete(f"/v1/segments/{b}").status_code == 204
    assert client.delete(f"/v1/rules/{rule}").status_code == 204
    r = client.put(f"/v1/segments/{a}", json={"name": "Shoppers", "selection": {}})
    assert r.status_code == 200
    assert client.delete(f"/v1/segments/{a}").status_code == 204


def test_a_rule_another_runs_is_not_deleted_but_renames_freely(client):
    inner = _rule(client, "Inner", TAG)
    outer = _rule(client, "Outer", [{"type": "run_rule", "rule": inner, "check_condition": True}])
    twice = _rule(client, "Twice", [*TAG, {"type": "run_rule", "rule": outer}])
    # run_rule names a rule by id: a new name leaves every reference as it was
    r = client.put(f"/v1/rules/{inner}", json={"name": "Inner, renamed", "actions": TAG})
    assert r.status_code == 200
    details = _in_use(client.delete(f"/v1/rules/{inner}"), "delete", "rule 'Inner, renamed'")
    assert details == [
        {
            "path": f"rules/{outer}",
            "message": "rule 'Outer' uses rule 'Inner, renamed' at actions[0].rule",
        }
    ]
    assert _in_use(client.delete(f"/v1/rules/{outer}"), "delete", "rule 'Outer'") == [
        {"path": f"rules/{twice}", "message": "rule 'Twice' uses rule 'Outer' at actions[1].rule"}
    ]
    assert client.get(f"/v1/rules/{inner}").status_code == 200
    for rule in (twice, outer, inner):
        assert client.delete(f"/v1/rules/{rule}").status_code == 204


def test_referrers_in_other_accounts_do_not_count(api, engine, client):
    group = _group(client, "Shared name")
    with engine.begin() as conn:
        _, key = create_account(conn, f"test-{uuid.uuid4().hex[:8]}")
    other = Scoped(api, key)
    _group(other, "Shared name")
    _segment(other, "Theirs", {"include": [{"type": "group", "groups": ["Shared name"]}]})
    assert client.delete(f"/v1/groups/{group}").status_code == 204


# --- saves and deletes at the same time (PostgreSQL: SQLite has one writer at a time) -----


def _in_thread(work):
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", work()), daemon=True)
    thread.start()
    return thread, out


def _waits(thread: threading.Thread) -> None:
    thread.join(0.5)
    assert thread.is_alive(), "it should wait for the other transaction's lock"


@pytest.fixture
def acting(db_url, app_engine, account):
    """An engine acting for the test's account (as the app does), on PostgreSQL."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one write transaction at a time: no race to lose")
    return for_account(app_engine, account[0])


def test_a_delete_waits_for_a_save_naming_it_and_then_refuses(client, account, acting):
    group = _group(client, "Blacklist")
    rule = _rule(client, "Inner", TAG)
    body = SegmentIn(
        name="New", selection={"exclude": [{"type": "group", "groups": ["Blacklist"]}]}
    )
    with acting.begin() as conn:
        segment = segments.create_segment(conn, account[0], body)
        rules.create_rule(
            conn, account[0], RuleIn(name="Runs", actions=[{"type": "run_rule", "rule": rule}])
        )
        deleting, out = _in_thread(lambda: client.delete(f"/v1/groups/{group}"))
        renaming, out2 = _in_thread(lambda: client.put(f"/v1/groups/{group}", json={"name": "B"}))
        deleting_rule, out3 = _in_thread(lambda: client.delete(f"/v1/rules/{rule}"))
        for thread in (deleting, renaming, deleting_rule):
            _waits(thread)
    for thread in (deleting, renaming, deleting_rule):
        thread.join(30)
    details = _in_use(out["r"], "delete", "group 'Blacklist'")
    assert details[0]["path"] == f"segments/{segment['id']}"
    assert _in_use(out2["r"], "rename", "group 'Blacklist'") == details
    assert len(_in_use(out3["r"], "delete", "rule 'Inner'")) == 1


@pytest.mark.parametrize("change", ["delete", "rename"])
def test_a_save_waits_for_a_delete_of_what_it_names_and_then_refuses(
    client, account, acting, change
):
    group = _group(client, "Blacklist")
    segment = _segment(client, "Old", {})
    rule = _rule(client, "Inner", TAG)
    with acting.begin() as conn:
        if change == "delete":
            catalog.delete_group(conn, account[0], group)
            segments.delete_segment(conn, account[0], segment)
            rules.delete_rule(conn, account[0], rule)
        else:
            catalog.rename_group(conn, account[0], group, "Renamed")
            segments.update_segment(
                conn, account[0], segment, SegmentIn(name="Renamed", selection={})
            )
        selection = {
            "include": [{"type": "segment", "segments": ["Old"]}],
            "exclude": [{"type": "group", "groups": ["Blacklist"]}],
        }
        saving, out = _in_thread(
            lambda: client.post("/v1/segments", json={"name": "New", "selection": selection})
        )
        actions = [{"type": "run_rule", "rule": rule}]
        saving_rule, out2 = _in_thread(
            lambda: client.post("/v1/rules", json={"name": "Runs", "actions": actions})
        )
        _waits(saving)
        if change == "delete":
            _waits(saving_rule)
    saving.join(30)
    saving_rule.join(30)
    r = out["r"]
    assert r.status_code == 422, r.text
    messages = {d["path"]: d["message"] for d in r.json()["error"]["details"]}
    assert messages["selection.include[0].segments"] == "unknown segment 'old'"
    assert messages["selection.exclude[0].groups[0]"].startswith("no group named 'Blacklist'")
    r = out2["r"]
    if change == "delete":
        assert r.status_code == 422 and f"unknown rule {rule}" in r.text
    else:
        assert r.status_code == 201, r.text  # a rule's name is not how it is run


def test_names_in_use_are_found_whatever_their_case_and_script(client):
    """Stored JSON escapes non-ASCII names ('\\u0141'): they are found all the same, in any
    case, and a name that only contains another's key is not a reference to it."""
    group = _group(client, "Łódź")
    _group(client, "Łódź North")
    k = _group(client, "k")
    s = _segment(client, "Local", {"include": [{"type": "group", "groups": ["ŁÓDŹ"]}]})
    _segment(client, "North", {"include": [{"type": "group", "groups": ["łódź north"]}]})
    # KELVIN SIGN, whose key is the ASCII 'k', stored escaped
    _segment(client, "Cold", {"include": [{"type": "group", "groups": ["\u212a"]}]})
    r = client.delete(f"/v1/groups/{group}")
    assert [d["path"] for d in _in_use(r, "delete", "group 'Łódź'")] == [f"segments/{s}"]
    r = client.put(f"/v1/groups/{k}", json={"name": "k2"})
    assert len(_in_use(r, "rename", "group 'k'")) == 1


def test_two_saves_that_lock_each_other_are_a_409_to_try_again(client, account, acting):
    """A deadlock (each save holds the segment the other names) stops one of them: that
    request answers 409 conflict with Retry-After, not 500."""
    a = _segment(client, "A", {})
    b = _segment(client, "B", {})
    with acting.begin() as conn:
        # this transaction is "saving A to name B", halfway: A locked, B not yet
        references.guard(conn, account[0], "segment", a, rename_to="A")
        selection = {"include": [{"type": "segment", "segments": ["A"]}]}
        saving, out = _in_thread(
            lambda: client.put(f"/v1/segments/{b}", json={"name": "B", "selection": selection})
        )
        _waits(saving)  # B locked by the request, which waits for A
        references.hold(conn, account[0], [references.Use("segment", "b", "")])
        saving.join(30)
    r = out["r"]
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "conflict" and r.headers["Retry-After"] == "1"
    assert client.get(f"/v1/segments/{b}").json()["selection"] == {}
