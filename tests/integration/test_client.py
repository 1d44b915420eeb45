"""A Python client generated from openapi.yaml by openapi-python-client drives the real
app over HTTP: load contacts, count a selection, run a job, see its effect."""

import importlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "audience_client"


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """The client package, generated offline into a temporary folder and imported."""
    pytest.importorskip(
        "openapi_python_client", reason="openapi-python-client is not installed (test extra)"
    )
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")  # no ruff run on the generated code
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(ROOT / "openapi.yaml"),
            "--output-path",
            str(out / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="session")
def base_url(api) -> Iterator[str]:
    """The session's app (its job runner already started) served over real HTTP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        api.app, lifespan="off", log_config=None, access_log=False, loop="asyncio", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def submodule(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_loads_counts_and_runs_a_job(generated, base_url, account):
    m = submodule("models")
    upsert_contacts = submodule("api.contacts.upsert_contacts")
    get_contact = submodule("api.contacts.get_contact")
    count_selection = submodule("api.selections.count_selection")
    submit_job = submodule("api.jobs.submit_job")
    get_job = submodule("api.jobs.get_job")

    with generated.AuthenticatedClient(
        base_url=base_url, token=account[1], raise_on_unexpected_status=True
    ) as client:
        loaded = upsert_contacts.sync(
            client=client,
            body=m.ContactsIn(
                contacts=[
                    m.ContactIn(email="ala@example.com", tags=["VIP"], score=7, email_opt_in=True),
                    m.ContactIn(email="ola@example.com", tags=["vip", "newsletter"]),
                    m.ContactIn(email="ela@example.com", tags=["newsletter"]),
                ]
            ),
        )
        assert isinstance(loaded, m.UpsertResult), loaded
        assert (loaded.created, loaded.updated) == (3, 0)

        # Fields left out are left as they are: the client sends no defaults for them.
        again = upsert_contacts.sync(
            client=client,
            body=m.ContactsIn(contacts=[m.ContactIn(email="ala@example.com", first_name="Ala")]),
        )
        assert (again.created, again.updated) == (0, 1)

        vip = m.Selection(include=[m.TagSelector(type_="tag", tags=["VIP"])])
        counted = count_selection.sync(client=client, body=vip)
        assert isinstance(counted, m.CountResult), counted
        assert counted.total == 2

        # An event test: the generated model requires its aggregate and operator.
        buyers = m.Selection(
            filter_=m.EventTest(
                event=m.EventFilter(type_="PURCHASE", within_days=30),
                agg=m.EventTestAgg.COUNT,
                op=m.EventTestOp.GTE,
                value=1,
            )
        )
        counted = count_selection.sync(client=client, body=buyers)
        assert isinstance(counted, m.CountResult), counted
        assert counted.total == 0

        job = submit_job.sync(
            client=client,
            body=m.JobIn(
                selection=vip,
                actions=[m.AddTags(type_="add_tags", tags=["black-friday"])],
                expected_total=2,
            ),
        )
        assert isinstance(job, m.Job), job
        deadline = time.monotonic() + 30
        while job.status not in (m.JobStatus.SUCCEEDED, m.JobStatus.FAILED):
            assert time.monotonic() < deadline, f"job {job.id} still {job.status}"
            time.sleep(0.05)
            job = get_job.sync(job.id, client=client)
        assert job.status == m.JobStatus.SUCCEEDED, job.error
        assert (job.total, job.processed) == (2, 2)
        assert [(a.type_, a.affected) for a in job.actions] == [("add_tags", 2)]

        tagged = m.Selection(include=[m.TagSelector(type_="tag", tags=["black-friday"])])
        assert count_selection.sync(client=client, body=tagged).total == 2
        ala = get_contact.sync(contact_id(client, m, "ala@example.com"), client=client)
        assert isinstance(ala, m.Contact), ala
        assert ala.first_name == "Ala"
        assert (ala.score, ala.email_opt_in) == (7, True)
        assert sorted(ala.tags) == ["VIP", "black-friday"]


def contact_id(client, m, email: str) -> int:
    preview_selection = submodule("api.selections.preview_selection")
    page = preview_selection.sync(
        client=client,
        body=m.PreviewIn(
            selection=m.Selection(
                filter_=m.FieldTest(field=m.FieldTestField.EMAIL, op=m.FieldTestOp.EQ, value=email)
            )
        ),
    )
    assert isinstance(page, m.PreviewResult), page
    assert page.total == 1
    return page.contacts[0].id
