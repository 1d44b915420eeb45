"""Every action of the catalogue as a job vs one hand-written SQL statement.

    python -m bench.actions [--url postgresql://…/audience_bench] [--contacts 1000000]
                            [--size 200000]

On the `bench-N` account (`audience seed` data), the selection is the `--size` newest
contacts (created at or after a cut, deleted ones included so delete/undelete keep it).
For each action: SQL first puts the selection in the state opposite to what the action
does (unmeasured), so the action changes most of it; then the job runs end to end (POST
/v1/jobs to a real `audience serve` with AUDIENCE_REDIS_URL set and one real `audience
worker`, polling GET /v1/jobs/{id} until it succeeded); then the same preparation and ONE
hand-written SQL statement doing the same on the same selection. Every measurement starts
after VACUUM (ANALYZE) of the tables it touches and a CHECKPOINT.

identify_sex and invalidate_bad_emails decide in Python (a names dictionary, a full e-mail
syntax check), so they have no one-statement equivalent; they report contacts per second.
For invalidate_bad_emails three addresses in four of the selection are made invalid first
(a dot before the @).

The contacts' columns (e-mail included) are saved first and restored at the end; the bench
tag, owner, group, funnel, detail, coupons, links, rule and jobs are removed.
"""

import argparse
import time
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa

from app import tables as t
from app.contacts.service import ensure_named, ensure_users
from app.names import name_key
from bench.common import (
    BENCH_REDIS_URL,
    DEFAULT_URL,
    JobFailed,
    Server,
    database,
    delete_jobs,
    maintain,
    run_job,
    seeded_account,
    start_worker,
    table,
    timed,
    verdict,
)

RATIO_TARGET = 1.5
PYTHON_TARGET = 50_000  # contacts/s for the Python-decided actions

SEL = "c.account_id = :a AND c.created_at >= :cut"
IDS = f"SELECT c.id FROM contacts c WHERE {SEL}"
SAVED = "bench_actions_saved"
SAVED_COLUMNS = (
    "email",
    "sex",
    "score",
    "state",
    "email_opt_in",
    "phone_opt_in",
    "email_valid",
    "deleted",
    "updated_at",
)

TAG = "bench-actions"
OWNER = "bench-owner@bench.example"
GROUP = "Bench group"
FUNNEL = "Bench funnel"
DETAIL = "bench_detail"
COUPON = "BENCH"
# generate_coupons by hand: the coupons and the job's output rows (as the job writes both)
COUPONS_SQL = (
    "WITH given AS (INSERT INTO coupons (account_id, contact_id, name, name_key, code, "
    f"valid_until, job_id, created_at) SELECT :a, c.id, '{COUPON}', "
    f"'{name_key(COUPON)}', upper(substr(md5(random()::text || c.id::text), 1, 12)), "
    f"now() + interval '14 days', :job, now() FROM contacts c WHERE {SEL} "
    "ON CONFLICT (account_id, code) DO NOTHING RETURNING contact_id, code) "
    "INSERT INTO job_output (account_id, job_id, position, contact_id, value) "
    "SELECT :a, :job, 1, contact_id, code FROM given"
)
LINKS = "https://bench.example/r/"
RULE = "Bench rule"


@dataclass
class Step:
    label: str
    action: dict
    prep: list[str]  # puts the selection in the opposite state (unmeasured)
    floor: str | None  # one hand-written statement doing the same
    tables: tuple[str, ...]  # vacuumed before each measurement
    cleanup: list[str] = field(default_factory=list)
    chunk_size: int | None = None  # a worker with this AUDIENCE_JOB_CHUNK_SIZE (None: default)


def set_column(label: str, action: dict, column: str, before: str, after: str) -> Step:
    return Step(
        label,
        action,
        [f"UPDATE contacts c SET {column} = {before} WHERE {SEL}"],
        f"UPDATE contacts c SET {column} = {after}, updated_at = now() "
        f"WHERE {SEL} AND c.{column} <> {after}",
        ("contacts",),
    )


def link_steps(
    kind: str, table_name: str, thing: str, param: str, action_field: dict
) -> list[Step]:
    """add_X / remove_X on a link table (contact, thing)."""
    insert = (
        f"INSERT INTO {table_name} (contact_id, {thing}, account_id, added_at) "
        f"SELECT c.id, :{param}, :a, now() FROM contacts c WHERE {SEL} ON CONFLICT DO NOTHING"
    )
    clear = f"DELETE FROM {table_name} WHERE {thing} = :{param}"
    add, remove = kind.split("/")
    return [
        Step(add, {"type": add, **action_field}, [clear], insert, (table_name,), [clear]),
        Step(
            remove,
            {"type": remove, **action_field},
            [insert],
            f"DELETE FROM {table_name} x USING contacts c WHERE x.contact_id = c.id "
            f"AND x.{thing} = :{param} AND {SEL}",
            (table_name,),
            [clear],
        ),
    ]


def funnel_upsert(stage: str) -> str:
    return (
        "INSERT INTO contact_funnels AS cf (contact_id, funnel_id, stage_id, account_id, "
        f"entered_at) SELECT c.id, :funnel, :{stage}, :a, now() FROM contacts c WHERE {SEL} "
        "ON CONFLICT (contact_id, funnel_id) DO UPDATE SET stage_id = excluded.stage_id, "
        "entered_at = excluded.entered_at WHERE cf.stage_id <> excluded.stage_id"
    )


def steps(rule_id: int) -> list[Step]:
    clear_funnel = "DELETE FROM contact_funnels WHERE funnel_id = :funnel"
    in_stage_a = (
        "INSERT INTO contact_funnels (contact_id, funnel_id, stage_id, account_id, entered_at) "
        f"SELECT c.id, :funnel, :stage_a, :a, now() FROM contacts c WHERE {SEL}"
    )
    clear_detail = f"DELETE FROM contact_details WHERE account_id = :a AND name = '{DETAIL}'"
    set_detail = (
        "INSERT INTO contact_details AS d (contact_id, name, value, account_id) "
        f"SELECT c.id, '{DETAIL}', 'yes', :a FROM contacts c WHERE {SEL} "
        "ON CONFLICT (contact_id, name) DO UPDATE SET value = excluded.value "
        "WHERE d.value <> excluded.value"
    )
    clear_coupons = f"DELETE FROM coupons WHERE account_id = :a AND name_key = '{name_key(COUPON)}'"
    clear_links = f"DELETE FROM links WHERE account_id = :a AND url LIKE '{LINKS}%'"
    return [
        set_column(
            "set_email_opt_in",
            {"type": "set_email_opt_in", "value": True},
            "email_opt_in",
            "false",
            "true",
        ),
        set_column(
            "set_phone_opt_in",
            {"type": "set_phone_opt_in", "value": True},
            "phone_opt_in",
            "false",
            "true",
        ),
        set_column(
            "set_email_valid",
            {"type": "set_email_valid", "value": True},
            "email_valid",
            "false",
            "true",
        ),
        set_column(
            "set_state",
            {"type": "set_state", "state": "CUSTOMER"},
            "state",
            "'PROSPECT'",
            "'CUSTOMER'",
        ),
        set_column(
            "set_score set", {"type": "set_score", "mode": "set", "value": 500}, "score", "0", "500"
        ),
        Step(
            "set_score add",
            {"type": "set_score", "mode": "add", "value": 1},
            [],
            f"UPDATE contacts c SET score = c.score + 1, updated_at = now() WHERE {SEL}",
            ("contacts",),
        ),
        set_column("delete", {"type": "delete"}, "deleted", "false", "true"),
        set_column("undelete", {"type": "undelete"}, "deleted", "true", "false"),
        *link_steps("add_tags/remove_tags", "contact_tags", "tag_id", "tag", {"tags": [TAG]}),
        *link_steps(
            "add_owner/remove_owner", "contact_owners", "user_id", "user", {"owner": OWNER}
        ),
        Step(
            "set_funnel_stage (enter)",
            {"type": "set_funnel_stage", "funnel": FUNNEL, "stage": "A"},
            [clear_funnel],
            funnel_upsert("stage_a"),
            ("contact_funnels",),
            [clear_funnel],
        ),
        Step(
            "set_funnel_stage (move)",
            {"type": "set_funnel_stage", "funnel": FUNNEL, "stage": "B"},
            [clear_funnel, in_stage_a],
            funnel_upsert("stage_b"),
            ("contact_funnels",),
            [clear_funnel],
        ),
        Step(
            "remove_from_funnel",
            {"type": "remove_from_funnel", "funnel": FUNNEL},
            [clear_funnel, in_stage_a],
            "DELETE FROM contact_funnels x USING contacts c WHERE x.contact_id = c.id "
            f"AND x.funnel_id = :funnel AND {SEL}",
            ("contact_funnels",),
            [clear_funnel],
        ),
        *link_steps(
            "add_to_group/remove_from_group", "group_members", "group_id", "group", {"group": GROUP}
        ),
        Step(
            "set_detail",
            {"type": "set_detail", "name": DETAIL, "value": "yes"},
            [clear_detail],
            set_detail,
            ("contact_details",),
            [clear_detail],
        ),
        Step(
            "delete_detail",
            {"type": "delete_detail", "name": DETAIL},
            [clear_detail, set_detail],
            "DELETE FROM contact_details x USING contacts c WHERE x.contact_id = c.id "
            f"AND x.name = '{DETAIL}' AND {SEL}",
            ("contact_details",),
            [clear_detail],
        ),
        Step(
            "generate_coupons",
            {"type": "generate_coupons", "name": COUPON, "length": 12, "valid_days": 14},
            [clear_coupons],
            COUPONS_SQL,
            ("coupons", "job_output"),
            [clear_coupons],
        ),
        Step(
            "generate_coupons (chunk 5,000)",
            {"type": "generate_coupons", "name": COUPON, "length": 12, "valid_days": 14},
            [clear_coupons],
            COUPONS_SQL,
            ("coupons", "job_output"),
            [clear_coupons],
            chunk_size=5000,
        ),
        Step(
            "generate_links",
            {"type": "generate_links", "url": LINKS + "{token}"},
            [],
            # a hash per contact, the link and the job's output rows (as the job writes)
            "WITH given AS (INSERT INTO links (account_id, contact_id, job_id, token, url, "
            "created_at) SELECT :a, c.id, :job, x.token, :prefix || x.token, now() "
            "FROM contacts c, LATERAL (SELECT encode(sha256(convert_to('floor:' || :job || "
            f"':' || c.id, 'UTF8')), 'hex') AS token) x WHERE {SEL} ON CONFLICT DO NOTHING "
            "RETURNING contact_id, url) INSERT INTO job_output (account_id, job_id, position, "
            "contact_id, value) SELECT :a, :job, 1, contact_id, url FROM given",
            ("links", "job_output"),
            [clear_links],
        ),
        Step(
            "identify_sex (overwrite)",
            {"type": "identify_sex", "overwrite": True},
            [f"UPDATE contacts c SET sex = 'unknown' WHERE {SEL}"],
            None,
            ("contacts",),
        ),
        Step(
            "invalidate_bad_emails",
            {"type": "invalidate_bad_emails"},
            [
                "UPDATE contacts c SET email_valid = true, email = CASE WHEN c.id % 4 <> 0 "
                "AND c.email NOT LIKE '%.@%' THEN replace(c.email, '@', '.@') ELSE c.email END "
                f"WHERE {SEL}"
            ],
            None,
            ("contacts",),
        ),
        Step(
            "run_rule (set_state + set_email_opt_in)",
            {"type": "run_rule", "rule": rule_id},
            [f"UPDATE contacts c SET state = 'PROSPECT', email_opt_in = true WHERE {SEL}"],
            "UPDATE contacts c SET state = 'PARTNER', email_opt_in = false, updated_at = now() "
            f"WHERE {SEL} AND (c.state <> 'PARTNER' OR c.email_opt_in)",
            ("contacts",),
        ),
    ]


def restore(engine, account_id: int) -> None:
    """Put back the contact columns saved by an earlier (maybe interrupted) run."""
    with engine.begin() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": SAVED}).scalar_one()
        if exists is None:
            return
        sets = ", ".join(f"{col} = s.{col}" for col in SAVED_COLUMNS)
        conn.execute(
            sa.text(f"UPDATE contacts c SET {sets} FROM {SAVED} s WHERE c.id = s.id"),
        )
        conn.exec_driver_sql(f"DROP TABLE {SAVED}")


def setup(engine, account_id: int) -> dict:
    """The bench's tag, owner, group, funnel (stages A, B) and rule; their ids."""
    now = t.utcnow()
    with engine.begin() as conn:
        params = {
            "tag": ensure_named(conn, t.tags, account_id, [TAG])[name_key(TAG)],
            "group": ensure_named(conn, t.groups, account_id, [GROUP])[name_key(GROUP)],
            "user": ensure_users(conn, account_id, [OWNER])[OWNER],
        }
        funnel = conn.execute(
            sa.select(t.funnels.c.id).where(
                t.funnels.c.account_id == account_id, t.funnels.c.name_key == name_key(FUNNEL)
            )
        ).scalar_one_or_none()
        if funnel is None:
            funnel = conn.execute(
                sa.insert(t.funnels)
                .values(
                    account_id=account_id, name=FUNNEL, name_key=name_key(FUNNEL), created_at=now
                )
                .returning(t.funnels.c.id)
            ).scalar_one()
            conn.execute(
                sa.insert(t.stages),
                [
                    {
                        "account_id": account_id,
                        "funnel_id": funnel,
                        "name": s,
                        "name_key": name_key(s),
                        "position": i,
                    }
                    for i, s in enumerate("AB")
                ],
            )
        params["funnel"] = funnel
        for s in "AB":
            params[f"stage_{s.lower()}"] = conn.execute(
                sa.select(t.stages.c.id).where(
                    t.stages.c.funnel_id == funnel, t.stages.c.name_key == name_key(s)
                )
            ).scalar_one()
        conn.execute(
            sa.delete(t.rules).where(
                t.rules.c.account_id == account_id, t.rules.c.name_key == name_key(RULE)
            )
        )
        params["rule"] = conn.execute(
            sa.insert(t.rules)
            .values(
                account_id=account_id,
                name=RULE,
                name_key=name_key(RULE),
                condition=None,
                actions=[
                    {"type": "set_state", "state": "PARTNER"},
                    {"type": "set_email_opt_in", "value": False},
                ],
                created_at=now,
                updated_at=now,
            )
            .returning(t.rules.c.id)
        ).scalar_one()
    return params


def teardown(engine, account_id: int, params: dict, all_steps: list[Step]) -> None:
    with engine.begin() as conn:
        for step in all_steps:
            for sql in step.cleanup:
                conn.execute(sa.text(sql), params)
        conn.execute(sa.text("DELETE FROM rules WHERE id = :rule"), params)
        conn.execute(sa.text("DELETE FROM funnels WHERE id = :funnel"), params)
        conn.execute(sa.text("DELETE FROM tags WHERE id = :tag"), params)
        conn.execute(sa.text("DELETE FROM groups WHERE id = :group"), params)
        conn.execute(sa.text("DELETE FROM users WHERE id = :user"), params)
    restore(engine, account_id)


def execute(engine, statements: list[str], params: dict) -> int:
    rows = 0
    with engine.begin() as conn:
        for sql in statements:
            rows = conn.execute(sa.text(sql), params).rowcount
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--redis", default=BENCH_REDIS_URL)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=200_000, help="contacts selected")
    parser.add_argument("--only", nargs="*", help="labels of the actions to run (default: all)")
    args = parser.parse_args()

    engine = database(args.url)
    account_id, key = seeded_account(engine, args.contacts)
    restore(engine, account_id)  # what an interrupted run may have left
    with engine.connect() as conn:
        cut = conn.execute(
            sa.text(
                "SELECT created_at FROM contacts WHERE account_id = :a "
                "ORDER BY created_at DESC OFFSET :k LIMIT 1"
            ),
            {"a": account_id, "k": args.size - 1},
        ).scalar_one()
    params = {"a": account_id, "cut": cut, "prefix": LINKS, **setup(engine, account_id)}
    with engine.begin() as conn:
        cols = ", ".join(SAVED_COLUMNS)
        conn.execute(
            sa.text(f"CREATE TABLE {SAVED} AS SELECT c.id, {cols} FROM contacts c WHERE {SEL}"),
            params,
        )
        n = conn.execute(sa.text(f"SELECT count(*) FROM {SAVED}")).scalar_one()
    selection = {
        "filter": {"field": "created_at", "op": "gte", "value": cut.isoformat()},
        "deleted": "include",
    }
    all_steps = steps(params["rule"])
    chosen = [s for s in all_steps if not args.only or s.label.split()[0] in args.only]

    rows, ratios, job_ids = [], [], []
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    try:
        with (
            Server(args.url, redis_url=args.redis) as server,
            httpx.Client(base_url=server.base, headers=headers, timeout=300) as http,
        ):
            worker = start_worker(server, args.redis)
            default_chunk = server.env.get("AUDIENCE_JOB_CHUNK_SIZE")
            # warm the API's queue pool and the worker (engine, names dictionary, validator)
            # on one contact of the selection (restored with the others at the end)
            with engine.connect() as conn:
                email = conn.execute(
                    sa.text(
                        f"SELECT c.email FROM contacts c WHERE {SEL} AND c.first_name <> '' LIMIT 1"
                    ),
                    params,
                ).scalar_one()
            warm = {"filter": {"field": "email", "op": "eq", "value": email}, "deleted": "include"}
            warm_actions = [
                {"type": "identify_sex", "overwrite": True},
                {"type": "invalidate_bad_emails"},
            ]
            job_ids.append(run_job(http, warm, warm_actions)[1]["id"])
            total = http.post("/v1/selections/count", json=selection).raise_for_status().json()
            assert total["total"] == n, (total, n)
            for step in chosen:
                wanted = str(step.chunk_size) if step.chunk_size else default_chunk
                if server.env.get("AUDIENCE_JOB_CHUNK_SIZE") != wanted:
                    if wanted is None:
                        server.env.pop("AUDIENCE_JOB_CHUNK_SIZE")
                    else:
                        server.env["AUDIENCE_JOB_CHUNK_SIZE"] = wanted
                    worker = start_worker(server, args.redis, old=worker)
                    job_ids.append(run_job(http, warm, warm_actions)[1]["id"])
                execute(engine, step.prep, params)
                maintain(engine, *step.tables, "job_members")
                try:
                    dt_job, job = run_job(http, selection, [step.action])
                except JobFailed as failed:
                    job_ids.append(failed.job["id"])
                    error = (failed.job["error"] or "").split("\n")[0][:90]
                    cells = [step.label, f"{n:,}", "—", "FAILED", "—", "—", error]
                    rows.append(cells)
                    execute(engine, step.cleanup, params)
                    print(" | ".join(cells), flush=True)
                    continue
                job_ids.append(job["id"])
                assert job["total"] == n, (step.label, job)
                affected = job["actions"][0]["affected"]
                cells = [
                    step.label,
                    f"{n:,}",
                    f"{affected / n:.0%}",
                    f"{dt_job:.2f}",
                    f"{n / dt_job:,.0f}",
                ]
                if step.floor is None:
                    rate = n / dt_job
                    cells += ["—", f"— (Python: {verdict(rate >= PYTHON_TARGET)})"]
                else:
                    execute(engine, step.prep, params)
                    maintain(engine, *step.tables)
                    dt_sql, changed = timed(
                        lambda step=step, job=job: execute(
                            engine, [step.floor], {**params, "job": job["id"]}
                        )
                    )
                    assert changed == affected, (step.label, changed, affected)
                    ratio = dt_job / dt_sql
                    ratios.append(ratio)
                    cells += [f"{dt_sql:.2f}", f"{ratio:.2f} {verdict(ratio <= RATIO_TARGET)}"]
                rows.append(cells)
                execute(engine, step.cleanup, params)
                delete_jobs(engine, [job["id"]])
                print(" | ".join(cells), flush=True)
    finally:
        teardown(engine, account_id, params, all_steps)
        delete_jobs(engine, job_ids)
        maintain(engine, "contacts", "job_members", "job_output")

    print(
        f"\n{args.contacts:,} contacts, PostgreSQL; selection: the {n:,} newest contacts "
        "(deleted included); job = POST /v1/jobs → succeeded (API + 1 arq worker); "
        "one SQL = one hand-written statement on the same selection, same starting state; "
        f"{time.perf_counter() - started:.0f} s in all\n"
    )
    print(
        table(
            [
                "action",
                "contacts",
                "changed",
                "job s",
                "job contacts/s",
                "one SQL s",
                f"job/SQL (≤ {RATIO_TARGET})",
            ],
            rows,
        )
    )
    if ratios:
        print(f"\nset-based: worst job/SQL {max(ratios):.2f}, ", end="")
        print(f"{sum(r <= RATIO_TARGET for r in ratios)} of {len(ratios)} within {RATIO_TARGET}")
    print(f"Python-decided actions: target ≥ {PYTHON_TARGET:,} contacts/s")


if __name__ == "__main__":
    main()
