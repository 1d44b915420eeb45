"""CSV imports: POST /v1/imports streams a file into the database, a job of kind `import`
upserts its rows by e-mail chunk by chunk (bad rows rejected alone, every problem listed at
GET /v1/jobs/{id}/errors), revert gives the state back; on SQLite and PostgreSQL."""

import csv
import io
import json
import uuid

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app import tables as t
from app.auth import create_account
from app.jobs.runner import run_job
from app.main import create_app
from tests.conftest import Scoped, make_settings
from tests.integration import test_worker
from tests.integration.test_worker import _account, _at

hold, stack = test_worker.hold, test_worker.stack  # fixtures


def submit(client, text: str | bytes, options: dict | str | None = None):
    data = {}
    if options is not None:
        data["options"] = options if isinstance(options, str) else json.dumps(options)
    body = text.encode() if isinstance(text, str) else text
    return client.post("/v1/imports", files={"file": ("contacts.csv", body, "text/csv")}, data=data)


def run_import(client, text, options=None) -> dict:
    r = submit(client, text, options)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    assert r.json()["kind"] == "import"
    job = client.wait(r.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def errors(client, job_id: int) -> list[list[str]]:
    r = client.get(f"/v1/jobs/{job_id}/errors")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(r.text)))


def contact(client, email: str) -> dict:
    (cid,) = client.ids(email)
    return client.get(f"/v1/contacts/{cid}").json()


def counters(job: dict) -> tuple:
    return tuple(job[k] for k in ("total", "processed", "created", "updated", "rejected"))


def new_client(api, engine) -> Scoped:
    with engine.begin() as conn:
        _, key = create_account(conn, f"test-{uuid.uuid4().hex[:8]}")
    return Scoped(api, key)


# What an import may change of an account, as comparable rows (updated_at aside).
STATE = {
    "contacts": [
        "id",
        "email",
        "first_name",
        "last_name",
        "city",
        "birth_date",
        "email_opt_in",
        "phone_opt_in",
        "score",
        "state",
        "deleted",
    ],
    "contact_tags": ["contact_id", "tag_id", "added_at"],
    "group_members": ["contact_id", "group_id", "added_at"],
    "contact_owners": ["contact_id", "user_id", "added_at"],
    "contact_funnels": ["contact_id", "funnel_id", "stage_id", "entered_at"],
    "contact_details": ["contact_id", "name", "value"],
}


def state(engine, account_id: int, ids: set[int] | None = None) -> dict:
    """The account's rows (of the contacts `ids` only, if given)."""
    found = {}
    with engine.connect() as conn:
        for name, cols in STATE.items():
            table = t.metadata.tables[name]
            key = table.c.id if name == "contacts" else table.c.contact_id
            query = sa.select(*[table.c[col] for col in cols]).where(
                table.c.account_id == account_id
            )
            if ids is not None:
                query = query.where(key.in_(ids))
            found[name] = sorted(tuple(r) for r in conn.execute(query))
    return found


# A file as spreadsheets write it: a BOM, `;`, quoted cells holding `;`, `"` and line
# breaks, Polish and German letters, an e-mail twice (the later row wins), three bad rows.
FILE = (
    "\ufeffemail;first_name;last_name;city;Notes;Stage;birth_date;tags;email_opt_in;score\r\n"
    'zofia@example.pl;Zofia;Łęcka-Gęślą;Łódź;"semi;colon";Lead;1990-05-01;vip|pl;true;10\r\n'
    'JURGEN@example.de;Jürgen;Größe-Straßer;München;"he said ""hi""";Won;;;true;5\r\n'
    'anna@example.pl;Anna;Nowak;Kraków;"multi\r\nline\nnote";Lead;;;false;\r\n'
    "bad-email;X;;;;;;;;\r\n"
    "zofia@example.pl;Zośka;;;;;;new;;\r\n"
    "piotr@example.pl;Piotr;;;;NoSuchStage;;;;\r\n"
    "ewa@example.pl;Ewa;;;;;2024-02-30;;;\r\n"
)
OPTIONS = {"columns": {"Notes": "detail:notes", "Stage": "funnel:Sales"}}


def _prepare(client) -> None:
    r = client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    assert r.status_code < 300, r.text
    client.load(
        {"email": "jurgen@example.de", "first_name": "J", "email_opt_in": False, "tags": ["old"]},
        {
            "email": "anna@example.pl",
            "city": "Gdańsk",
            "email_opt_in": True,
            "score": 3,
            "details": {"notes": "old note"},
        },
    )


def test_a_spreadsheet_file_imports_row_by_row(client, account, engine):
    _prepare(client)
    account_id = account[0]
    before = state(engine, account_id)
    job = run_import(client, FILE.encode("utf-8"), OPTIONS)
    assert counters(job) == (7, 7, 1, 2, 3)
    assert job["unmapped_columns"] == [] and job["selection"] is None

    zofia = contact(client, "zofia@example.pl")
    assert zofia["first_name"] == "Zośka"  # the later row wins
    assert (zofia["last_name"], zofia["city"]) == ("Łęcka-Gęślą", "Łódź")
    assert zofia["details"] == {"notes": "semi;colon"}
    assert zofia["funnels"] == {"Sales": "Lead"}
    assert zofia["birth_date"] == "1990-05-01" and zofia["score"] == 10
    assert sorted(zofia["tags"]) == ["new", "pl", "vip"]  # lists add up
    assert zofia["email_opt_in"] is True  # a new contact takes the file's opt-in

    jurgen = contact(client, "jurgen@example.de")
    assert (jurgen["first_name"], jurgen["last_name"]) == ("Jürgen", "Größe-Straßer")
    assert jurgen["details"] == {"notes": 'he said "hi"'}
    assert jurgen["funnels"] == {"Sales": "Won"} and jurgen["score"] == 5
    assert jurgen["email_opt_in"] is False  # an opt-out is sticky
    assert jurgen["tags"] == ["old"]

    anna = contact(client, "anna@example.pl")
    assert anna["details"] == {"notes": "multi\r\nline\nnote"}
    assert anna["city"] == "Kraków" and anna["score"] == 3  # an empty cell leaves it
    assert anna["email_opt_in"] is False  # true → false is allowed

    assert client.count({"filter": {"field": "email", "op": "in", "value": ["piotr@example.pl", "ewa@example.pl"]}}) == 0  # fmt: skip
    rows = errors(client, job["id"])
    assert rows == [
        ["line", "column", "error", "row"],
        ["5", "email", "an e-mail address has exactly one '@': 'bad-email'", "bad-email;X;;;;;;;;"],
        [
            "7",
            "Stage",
            "no stage 'NoSuchStage' in funnel 'Sales'",
            "piotr@example.pl;Piotr;;;;NoSuchStage;;;;",
        ],
        [
            "8",
            "birth_date",
            "not a date (YYYY-MM-DD): '2024-02-30'",
            "ewa@example.pl;Ewa;;;;;2024-02-30;;;",
        ],
    ]

    # the same file again: nothing new, nothing changed
    middle = state(engine, account_id)
    again = run_import(client, FILE.encode("utf-8"), OPTIONS)
    assert counters(again) == (7, 7, 0, 3, 3)
    assert state(engine, account_id) == middle

    # a contact's history names the import; a dry run of its revert counts what it gives back
    changes = client.get(f"/v1/contacts/{jurgen['id']}/history").json()["changes"]
    first_name = [c for c in changes if c["field"] == "first_name"]
    assert [(c["kind"], c["before"], c["after"]) for c in first_name] == [("import", "J", "Jürgen")]
    dry = client.post(f"/v1/jobs/{job['id']}/revert/dry-run").json()
    assert dry["total"] == 3 and dry["conflicts"] == 0

    # revert the first import: the state before it, the contact it created deleted
    r = client.post(f"/v1/jobs/{job['id']}/revert")
    assert r.status_code == 202, r.text
    revert = client.wait(r.json()["id"])
    assert revert["status"] == "succeeded" and revert["conflicts"] == 0, revert
    kept = {row[0] for row in before["contacts"]}
    assert state(engine, account_id, kept) == before
    assert contact(client, "zofia@example.pl")["deleted"] is True
    assert client.count({}) == 2


def test_rows_apply_once_across_chunks(solo_app, account, engine):
    """Chunks of 2 rows: an e-mail twice, chunks apart, is created once and counted once;
    the staged file is gone when the job ends."""
    client = Scoped(solo_app(job_chunk_size=2), account[1])
    lines = ["email,first_name,score"] + [f"p{i}@x.pl,P{i},{i}" for i in range(7)]
    lines += ["p0@x.pl,Again,100"]
    job = run_import(client, "\n".join(lines) + "\n")
    assert counters(job) == (8, 8, 7, 0, 0)
    p0 = contact(client, "p0@x.pl")
    assert (p0["first_name"], p0["score"]) == ("Again", 100)
    with engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(t.import_rows.c.job_id == job["id"])
        ).scalar_one()
    assert left == 0
    r = client.post(f"/v1/jobs/{job['id']}/revert")
    assert client.wait(r.json()["id"])["status"] == "succeeded"
    assert client.count({}) == 0


@pytest.fixture
def no_runner(api, app_engine, db_url):
    """An app that runs no job (the session's runner paused): a job waits until the test
    runs it."""
    api.app.state.runner.stop()
    settings = make_settings(db_url, job_chunk_size=2)
    try:
        with TestClient(create_app(settings, engine=app_engine, start_runner=False)) as http:
            yield http, settings
    finally:
        api.app.state.runner.start()


def test_a_cancelled_import_drops_its_file(no_runner, account, app_engine, engine):
    """Cancelled while queued (at once), or while running (between chunks): the staged
    rows go; what was applied stays."""
    http, settings = no_runner
    client = Scoped(http, account[1])
    text = "email\n" + "".join(f"q{i}@x.pl\n" for i in range(5))
    queued = submit(client, text).json()
    assert (queued["status"], queued["total"]) == ("queued", 5)
    assert staged(engine, queued["id"]) == 5
    r = client.post(f"/v1/jobs/{queued['id']}/cancel")
    assert r.json()["status"] == "cancelled" and staged(engine, queued["id"]) == 0

    running = submit(client, text).json()["id"]
    with engine.begin() as conn:  # asked to stop after its claim, before a chunk
        conn.execute(sa.update(t.jobs).where(t.jobs.c.id == running).values(cancel_requested=True))
    assert run_job(app_engine, running, settings) == "cancelled"
    assert staged(engine, running) == 0 and client.count({}) == 0


def staged(engine, job_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(t.import_rows.c.job_id == job_id)
        ).scalar_one()


def test_a_bad_row_lists_every_problem_and_formulas_are_neutralised(client):
    text = (
        'email,birth_date,score,sex\n"=HYPERLINK(""http://x"")",2024-02-30,many,robot\nok@x.pl,,,\n'
    )
    job = run_import(client, text)
    assert counters(job) == (2, 2, 1, 0, 1)
    rows = errors(client, job["id"])
    assert [r[:2] for r in rows[1:]] == [["2", "email"], ["2", "birth_date"], ["2", "score"], ["2", "sex"]]  # fmt: skip
    assert all(r[3].startswith("'=HYPERLINK(") for r in rows[1:])
    raw = client.get(f"/v1/jobs/{job['id']}/errors").text
    assert "\n2,email,\"an e-mail address has exactly one '@': '=HYPERLINK" in raw


def test_columns_are_mapped_by_name(client):
    text = "E-Mail\tFirst Name\tLAST_NAME\tFavourite Colour\tphone-opt-in\n"
    text += "ala@x.pl\tAla\tKot\tred\tyes\n"
    job = run_import(client, text, {"tags": ["fair"]})
    assert job["unmapped_columns"] == ["Favourite Colour"]
    ala = contact(client, "ala@x.pl")
    assert (ala["first_name"], ala["last_name"], ala["phone_opt_in"]) == ("Ala", "Kot", True)
    assert ala["tags"] == ["fair"] and ala["details"] == {}


def test_groups_owners_details_and_funnels(client):
    client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    text = "mail,Grupy,Opiekun,Plan,Etap,Ignore me\n"
    text += "g@x.pl,A|B,o1@x.pl;O2@x.pl,gold,won,x\n"
    options = {
        "columns": {
            "Grupy": "groups",
            "Opiekun": "owners",
            "Plan": "detail:plan",
            "Etap": "funnel:sales",
            "Ignore me": "skip",
        }
    }
    job = run_import(client, text, options)
    assert job["unmapped_columns"] == []
    g = contact(client, "g@x.pl")
    assert g["groups"] == ["A", "B"] and g["owners"] == ["o1@x.pl", "o2@x.pl"]
    assert g["details"] == {"plan": "gold"} and g["funnels"] == {"Sales": "Won"}


def test_update_existing_false_and_opt_in_may_turn_on(client):
    client.load({"email": "old@x.pl", "first_name": "Old", "email_opt_in": False})
    text = "email,first_name,email_opt_in\nold@x.pl,New,true\nnew@x.pl,New,true\n"
    job = run_import(client, text, {"update_existing": False})
    assert counters(job) == (2, 2, 1, 0, 0)
    assert contact(client, "old@x.pl")["first_name"] == "Old"
    job = run_import(client, text, {"opt_in_may_turn_on": True})
    assert contact(client, "old@x.pl")["email_opt_in"] is True


@pytest.mark.parametrize(
    ("text", "options", "path"),
    [
        ("first_name,city\nAla,Łódź\n", None, "file"),
        ("Adres,city\na@x.pl,Łódź\n", {"columns": {"city": "city"}}, "options.columns"),
        ("email\na@x.pl\n", "{not json", "options"),
        ("email\na@x.pl\n", '["a"]', "options"),
        ("email\na@x.pl\n", {"columns": {"email": "e-mail address"}}, "options.columns.email"),
        ("email\na@x.pl\n", {"columns": {"Nope": "city"}}, "options.columns.Nope"),
        ("email\na@x.pl\n", {"update_existing": "sometimes"}, "options.update_existing"),
        ("email\na@x.pl\n", {"colums": {}}, "options.colums"),
        ("email,Etap\na@x.pl,x\n", {"columns": {"Etap": "funnel:Nope"}}, "options.columns.Etap"),
        ("email,email\na@x.pl,b@x.pl\n", None, "file.header[1]"),
        ("", None, "file"),
        (b"email\n\xff\xfe@x.pl\n", None, "file"),
    ],
)
def test_bad_submissions_are_422_and_leave_nothing(client, text, options, path):
    r = submit(client, text, options)
    assert r.status_code == 422, r.text
    assert path in [d["path"] for d in r.json()["error"]["details"]], r.json()
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_file_over_the_import_limit_is_413(solo_app, account):
    client = Scoped(solo_app(max_import_bytes=2000, max_body_bytes=1000), account[1])
    big = "email,first_name\n" + "".join(f"c{i}@x.pl,Name{i}\n" for i in range(200))
    r = submit(client, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert client.get("/v1/jobs").json()["jobs"] == []
    # over the request body limit, under the import limit: imported
    fits = "email,first_name\n" + "".join(f"c{i}@x.pl,Name{i}\n" for i in range(90))
    assert 1000 < len(fits) < 1800
    assert counters(run_import(client, fits))[2] == 90


def test_a_file_streamed_without_length_is_refused_while_read(solo_app, account):
    client = Scoped(solo_app(max_import_bytes=50_000), account[1])
    boundary = "xyzzy"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nemail\r\n"
    ).encode()
    sent = {"n": 0}

    def body():
        yield head
        for i in range(10_000):  # 200 kB, never whole
            sent["n"] += 1
            yield f"contact{i:06d}@x.pl\r\n".encode()
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post(
        "/v1/imports",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_export_then_import_into_another_account_exports_the_same(client, api, engine):
    client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    client.load(
        {
            "email": "łucja@example.pl",
            "first_name": "Łucja",
            "last_name": 'Żółć, "Ż"',
            "city": "Łódź",
            "country": "PL",
            "birth_date": "1991-02-03",
            "sex": "female",
            "score": 42,
            "state": "CUSTOMER",
            "email_opt_in": True,
            "tags": ["VIP", "Ölfass"],
            "groups": ["Stali"],
            "owners": ["boss@example.com"],
            "details": {"plan": "gold;silver", "note": "line\nbreak"},
        },
        {"email": "max@example.de", "first_name": "Max", "phone": "+49 30 1234", "score": -3},
        {"email": "formula@example.com", "first_name": "=1+2", "company": "-minus"},
    )
    fields = [
        "email", "first_name", "last_name", "phone", "company", "city", "country",
        "birth_date", "sex", "score", "state", "email_opt_in", "phone_opt_in", "email_valid",
        "created_at", "tags", "groups", "owners", "detail:plan", "detail:note",
    ]  # fmt: skip
    body = {"selection": {}, "fields": fields, "format": "csv"}
    first = client.post("/v1/selections/export", json=body)
    assert first.status_code == 200, first.text
    other = new_client(api, engine)
    job = run_import(other, first.content)
    assert counters(job) == (3, 3, 3, 0, 0)
    second = other.post("/v1/selections/export", json=body)
    assert second.content == first.content


@pytest.mark.redis
@pytest.mark.postgres
def test_a_sigkilled_worker_imports_every_row_once(stack, engine, hold):
    """A real `audience worker` is killed mid-import (its chunk held by a row lock); another
    resumes after the last committed chunk: every row applied once, counters not doubled."""
    api, _, worker = stack
    first = worker()
    account_id, client = _account(api, engine, 2000)  # scores 0
    with engine.connect() as conn:
        emails = conn.execute(
            sa.select(t.contacts.c.email)
            .where(t.contacts.c.account_id == account_id)
            .order_by(t.contacts.c.id)
        ).scalars()
        lines = ["email,score,tags"] + [f"{e},5,imported" for e in emails]
    lines += [f"new{i}@x.pl,5,imported" for i in range(500)]
    held = hold(account_id, 1000)  # the chunk of rows 1000-1499 (500 a chunk) waits there
    r = submit(client, "\n".join(lines) + "\n")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert _at(client, job_id, 1000)["processed"] == 1000
    first.kill()
    killed_at = client.get(f"/v1/jobs/{job_id}").json()
    assert killed_at["status"] == "running" and killed_at["processed"] == 1000
    held.release()
    worker()
    job = client.wait(job_id, timeout=120)
    assert job["status"] == "succeeded", job
    assert counters(job) == (2500, 2500, 500, 2000, 0) and job["attempts"] >= 2
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 5}}) == 2500
    assert client.count({"include": [{"type": "tag", "tags": ["imported"]}]}) == 2500
    cl = t.change_log
    with engine.connect() as conn:
        logged = dict(
            conn.execute(
                sa.select(cl.c.field, sa.func.count())
                .where(cl.c.account_id == account_id, cl.c.job_id == job_id)
                .group_by(cl.c.field)
            ).all()
        )
        staged = conn.execute(
            sa.select(sa.func.count()).where(t.import_rows.c.job_id == job_id)
        ).scalar_one()
    # the 500 created: one row each (a revert deletes them whole)
    assert logged == {"deleted": 500, "score": 2000, "tag": 2000} and staged == 0


def test_a_body_that_is_not_multipart_is_a_400_the_schema_names(client, account, engine):
    boundary = "47f9a2ed7731eb3ee3d7d20b50d6bbb3"
    r = client.post(
        "/v1/imports",
        content=f"--{boundary}\r\n-169133796--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and r.json()["error"]["message"]
    with engine.connect() as conn:
        jobs = conn.execute(sa.select(sa.func.count()).where(t.jobs.c.account_id == account[0]))
        assert jobs.scalar_one() == 0  # nothing was submitted
