"""Applying an import, chunk by chunk: the job runner's handler for jobs of kind `import`.

A chunk is the next staged records past the job's cursor (a line number). They are parsed
in Python (app.imports.rows); bad rows go to `import_errors` with every problem they have;
the good ones are merged by e-mail (a later row wins a field, lists add up) and written
set-based, with the rules of POST /v1/contacts: new contacts in one INSERT, each column of
existing ones in one UPDATE from the chunk's values, tags, groups, owners, details and
funnel stages each in one INSERT … ON CONFLICT. Every change is logged in the change log
under a fixed step a kind of change (so a revert gives it back): a created contact as
`deleted` true → false (a revert deletes it, softly), a column, a link row, a detail, a
stage. The runner commits the chunk with the job's cursor, counters and the removal of the
chunk's staged records, so a retried chunk is applied once."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.actions import RunContext, changes
from app.config import Settings
from app.contacts.columns import NEW_CONTACT, SETTABLE
from app.contacts.service import ensure_named, ensure_users
from app.db import dialect_insert, in_ids, in_values, insert_rows, is_postgres, rows_from
from app.imports import repository
from app.imports.rows import Record, parse_row
from app.imports.staging import row_text
from app.names import name_key

ACTION = "import"
c = t.contacts
log = t.change_log
ID = sa.BigInteger()

# The change log's steps of an import, in the order they are applied (a revert runs them
# last first): created contacts, each column, then the related rows.
COLUMN_STEPS = {name: i + 1 for i, name in enumerate(SETTABLE)}
STEP_CREATED = 0
STEP_TAGS, STEP_GROUPS, STEP_OWNERS, STEP_FUNNELS, STEP_DETAILS = (
    len(SETTABLE) + 1 + i for i in range(5)
)
OPT_INS = ("email_opt_in", "phone_opt_in")


@dataclass
class Outcome:
    last_line: int
    processed: int
    created: int
    updated: int
    rejected: int


class Importer:
    """One import job's handler: its spec, and the stages of the funnels it names."""

    def __init__(self, conn: Connection, account_id: int, job_id: int, spec: dict):
        self.account_id = account_id
        self.job_id = job_id
        self.header: list[str] = spec["header"]
        self.targets: list[str | None] = spec["targets"]
        self.delimiter: str = spec["delimiter"]
        options = spec["options"]
        self.tags: list[str] = options["tags"]
        self.update_existing: bool = options["update_existing"]
        self.opt_in_may_turn_on: bool = options["opt_in_may_turn_on"]
        funnels: dict[str, int] = spec["funnels"]
        by_id = {fid: key for key, fid in funnels.items()}
        st = t.stages
        self.stages = (
            {
                (by_id[fid], key): (fid, sid)
                for fid, key, sid in conn.execute(
                    sa.select(st.c.funnel_id, st.c.name_key, st.c.id).where(
                        st.c.account_id == account_id, st.c.funnel_id.in_(list(by_id))
                    )
                )
            }
            if by_id
            else {}
        )
        f = t.funnels
        self.funnel_names = {
            by_id[fid]: name
            for fid, name in (
                conn.execute(
                    sa.select(f.c.id, f.c.name).where(
                        f.c.account_id == account_id, f.c.id.in_(list(by_id))
                    )
                )
                if by_id
                else []
            )
        }

    # --- one chunk ---------------------------------------------------------------------

    def apply(
        self, conn: Connection, *, after: int, size: int, now: datetime, settings: Settings
    ) -> Outcome | None:
        """The next chunk past line `after`, applied; None when no record is left."""
        staged = repository.staged(conn, self.account_id, self.job_id, after=after, size=size)
        if not staged:
            return None
        good, errors = self._parse(staged)
        repository.add_errors(conn, self.account_id, self.job_id, errors)
        rejected = len({e["line"] for e in errors})
        rc = RunContext(
            conn=conn,
            account_id=self.account_id,
            job_id=self.job_id,
            now=now,
            as_of=now,
            settings=settings,
        )
        created, updated = self._write(rc, _merge(good))
        repository.unstage(conn, self.account_id, self.job_id, upto=staged[-1][0])
        return Outcome(staged[-1][0], len(staged), created, updated, rejected)

    def _parse(self, staged: list[tuple[int, list[str]]]) -> tuple[list[Record], list[dict]]:
        good: list[Record] = []
        errors: list[dict] = []
        for line, cells in staged:
            record, problems = parse_row(line, cells, self.header, self.targets, self.tags)
            if record is not None:
                problems = self._unknown_stages(record)
            if problems:
                text = row_text(cells, self.delimiter)
                errors += [
                    {"line": line, "seq": seq, "column": column, "error": error, "row": text}
                    for seq, (column, error) in enumerate(problems)
                ]
            else:
                good.append(record)
        return good, errors

    def _unknown_stages(self, record: Record) -> list[tuple[str, str]]:
        return [
            (column, f"no stage '{stage}' in funnel '{self.funnel_names.get(key, key)}'")
            for key, (column, stage) in record.funnels.items()
            if (key, name_key(stage)) not in self.stages
        ]

    # --- writing -------------------------------------------------------------------------

    def _write(self, rc: RunContext, merged: dict[str, Record]) -> tuple[int, int]:
        if not merged:
            return 0, 0
        conn = rc.conn
        emails = list(merged)
        existing = dict(
            conn.execute(
                sa.select(c.c.email, c.c.id).where(
                    c.c.account_id == self.account_id, in_values(conn, c.c.email, emails, sa.String)
                )
            ).all()
        )
        created = self._create(rc, [e for e in emails if e not in existing], merged)
        # a contact another writer created meanwhile is there now: updated, not created
        late = [e for e in emails if e not in existing and e not in created]
        if late:
            existing.update(
                conn.execute(
                    sa.select(c.c.email, c.c.id).where(
                        c.c.account_id == self.account_id,
                        in_values(conn, c.c.email, late, sa.String),
                    )
                ).all()
            )
        if not self.update_existing:
            existing = {}
        if is_postgres(conn) and rc.settings.change_log:
            self._set_columns(rc, existing, merged)
        else:
            for column in SETTABLE:
                pairs = [
                    (cid, merged[e].fields[column])
                    for e, cid in existing.items()
                    if column in merged[e].fields
                ]
                if pairs:
                    self._set_column(_step(rc, COLUMN_STEPS[column]), column, pairs)
        ids = {**existing, **created}
        self._related(rc, {e: merged[e] for e in ids}, ids, set(created.values()))
        return len(created), len(existing) - self._created_before(rc, list(existing.values()))

    def _created_before(self, rc: RunContext, ids: list[int]) -> int:
        """How many of `ids` an earlier chunk of this import created (a contact the file
        names twice, chunks apart, is created once and counted once)."""
        if not ids or not rc.settings.change_log:
            return 0
        return rc.conn.execute(
            sa.select(sa.func.count()).where(
                log.c.account_id == self.account_id,
                log.c.job_id == self.job_id,
                log.c.step == STEP_CREATED,
                in_ids(rc.conn, log.c.contact_id, ids),
            )
        ).scalar_one()

    def _create(self, rc: RunContext, new: list[str], merged: dict[str, Record]) -> dict[str, int]:
        if not new:
            return {}
        conn = rc.conn
        rows = [{"email": e, **NEW_CONTACT, "created_at": rc.now, **merged[e].fields} for e in new]
        ins = insert_rows(
            conn, c, rows, {"account_id": self.account_id, "updated_at": rc.now}
        ).on_conflict_do_nothing(index_elements=["account_id", "email"])
        created = dict(conn.execute(ins.returning(c.c.email, c.c.id)).all())
        if created and rc.settings.change_log:
            step = _step(rc, STEP_CREATED)
            _log(
                step,
                sa.select(
                    *changes.rows(
                        c.c.id,
                        "deleted",
                        before=changes.as_text(sa.true()),
                        after=changes.as_text(c.c.deleted),
                    )
                ).where(
                    c.c.account_id == self.account_id,
                    in_ids(conn, c.c.id, sorted(created.values())),
                ),
            )
        return created

    def _set_columns(self, rc: RunContext, existing: dict[str, int], merged) -> None:
        """PostgreSQL: every column of existing contacts in ONE UPDATE from the chunk's
        values (NULL: the cell was empty, the value stays), logged by the same statement
        (a data-modifying CTE returns each row's values before and after; a log row a
        column that changed, under the column's step). The rows are locked first, so the
        values the UPDATE reads are the ones it replaces."""
        conn = rc.conn
        columns = [n for n in SETTABLE if any(n in merged[e].fields for e in existing)]
        if not columns:
            return
        ids = sorted(existing.values())
        by_id = {cid: merged[e].fields for e, cid in existing.items()}
        v = rows_from(
            conn,
            id=(ID, ids),
            **{n: (c.c[n].type, [by_id[i].get(n) for i in ids]) for n in columns},
        ).subquery("v")
        conn.execute(
            sa.select(c.c.id)
            .where(c.c.account_id == self.account_id, in_ids(conn, c.c.id, ids))
            .order_by(c.c.id)
            .with_for_update()
        ).all()
        old = (
            sa.select(c.c.id, *[c.c[n] for n in columns])
            .where(c.c.account_id == self.account_id, in_ids(conn, c.c.id, ids))
            .subquery("old")
        )
        new = {n: self._new_value(n, old.c[n], v.c[n]) for n in columns}
        changed = (
            sa.update(c)
            .where(
                c.c.account_id == self.account_id,
                c.c.id == v.c.id,
                old.c.id == v.c.id,
                sa.tuple_(*[old.c[n] for n in columns]).is_distinct_from(sa.tuple_(*new.values())),
            )
            .values({**new, "updated_at": rc.now})
            .returning(
                c.c.id.label("contact_id"),
                *[old.c[n].label(f"b_{n}") for n in columns],
                *[c.c[n].label(f"a_{n}") for n in columns],
            )
            .cte("changed")
        )
        parts = []
        for n in columns:
            before, after = changed.c[f"b_{n}"], changed.c[f"a_{n}"]
            constants = changes.stamp(_step(rc, COLUMN_STEPS[n]), ACTION)
            parts.append(
                sa.select(
                    changed.c.contact_id,
                    sa.literal(n, sa.String()).label("field"),
                    sa.literal(0, ID).label("ref"),
                    changes.as_text(before).label("before"),
                    changes.as_text(after).label("after"),
                    *[col.label(k) for k, col in constants.items()],
                ).where(before.is_distinct_from(after))
            )
        names = ["contact_id", "field", "ref", "before", "after", *constants]
        source = sa.union_all(*parts).subquery()
        ins = dialect_insert(conn, log).from_select(names, sa.select(*[source.c[k] for k in names]))
        ins = ins.on_conflict_do_update(index_elements=PK, set_={"after": ins.excluded.after})
        conn.execute(ins.add_cte(changed, nest_here=True))

    def _new_value(self, column: str, now, given):
        """A column's value after the import: the file's, or what it was (empty cell); an
        opt-in goes from false to true only if the import allows it."""
        if column in OPT_INS and not self.opt_in_may_turn_on:
            return sa.case((given.is_(None), now), else_=sa.and_(now, given))
        return sa.func.coalesce(given, now)

    def _set_column(self, rc: RunContext, column: str, pairs: list[tuple[int, object]]) -> None:
        """One column of existing contacts to the chunk's values, logged; opt-ins never
        from false to true unless the import allows it."""
        col = c.c[column]
        v = rows_from(
            rc.conn, id=(ID, [p[0] for p in pairs]), value=(col.type, [p[1] for p in pairs])
        ).subquery("v")
        where = [
            c.c.account_id == self.account_id,
            c.c.id == v.c.id,
            col.is_distinct_from(v.c.value),
        ]
        if column in OPT_INS and not self.opt_in_may_turn_on:
            where.append(col == sa.true())  # the one change left: true → false
        logged = _log(
            rc,
            changes.locked(
                rc,
                sa.select(
                    *changes.rows(
                        c.c.id,
                        column,
                        before=changes.as_text(col),
                        after=changes.as_text(v.c.value),
                    )
                )
                .select_from(c.join(v, c.c.id == v.c.id))
                .where(*where),
                c,
            ),
        )
        stmt = sa.update(c).where(*where).values({column: v.c.value, "updated_at": rc.now})
        changed = set(rc.conn.execute(stmt.returning(c.c.id)).scalars())
        changes.reconcile(rc, logged, changed)

    def _related(
        self, rc: RunContext, merged: dict[str, Record], ids: dict[str, int], created: set[int]
    ) -> None:
        conn = rc.conn
        records = list(merged.values())
        tag_ids = ensure_named(conn, t.tags, self.account_id, (n for r in records for n in r.tags))
        group_ids = ensure_named(
            conn, t.groups, self.account_id, (n for r in records for n in r.groups)
        )
        user_ids = ensure_users(conn, self.account_id, (o for r in records for o in r.owners))
        tags, groups, owners, details, funnels = set(), set(), set(), {}, {}
        for email, r in merged.items():
            cid = ids[email]
            tags |= {(cid, tag_ids[name_key(n)]) for n in r.tags}
            groups |= {(cid, group_ids[name_key(n)]) for n in r.groups}
            owners |= {(cid, user_ids[o]) for o in r.owners}
            for name, value in r.details.items():
                details[(cid, name)] = value
            for key, (_, stage) in r.funnels.items():
                fid, sid = self.stages[(key, name_key(stage))]
                funnels[(cid, fid)] = sid
        # A contact this chunk created goes whole when the import is reverted: what it
        # was given is written without a log of its own.
        unlogged = _step(rc, 0)
        unlogged.settings = rc.settings.model_copy(update={"change_log": False})
        for step, table, thing, field, pairs in (
            (STEP_TAGS, t.contact_tags, "tag_id", "tag", tags),
            (STEP_GROUPS, t.group_members, "group_id", "group", groups),
            (STEP_OWNERS, t.contact_owners, "user_id", "owner", owners),
        ):
            for ctx, mine in _split(rc, unlogged, step, created, sorted(pairs)):
                self._link(ctx, table, thing, field, mine)
        for ctx, mine in _split(rc, unlogged, STEP_FUNNELS, created, sorted(funnels)):
            self._funnels(ctx, {k: funnels[k] for k in mine})
        for ctx, mine in _split(rc, unlogged, STEP_DETAILS, created, sorted(details)):
            self._details(ctx, {k: details[k] for k in mine})

    def _link(self, rc: RunContext, table: sa.Table, thing: str, field: str, pairs) -> None:
        v = rows_from(
            rc.conn, cid=(ID, [p[0] for p in pairs]), thing=(ID, [p[1] for p in pairs])
        ).subquery("v")
        log_first = sa.select(
            *changes.rows(v.c.cid, field, ref=v.c.thing, after="1", after_at=rc.now)
        ).where(~sa.exists().where(table.c.contact_id == v.c.cid, table.c[thing] == v.c.thing))
        source = sa.select(
            v.c.cid,
            v.c.thing,
            sa.literal(self.account_id, ID),
            sa.literal(rc.now, t.UTCDateTime()),
        ).where(sa.true())
        ins = (
            dialect_insert(rc.conn, table)
            .from_select(["contact_id", thing, "account_id", "added_at"], source)
            .on_conflict_do_nothing()
        )
        changes.insert_logged(rc, ACTION, ins, field, thing, "added_at", log_first)

    def _details(self, rc: RunContext, details: dict[tuple[int, str], str]) -> None:
        cd = t.contact_details
        keys = sorted(details)
        v = rows_from(
            rc.conn,
            cid=(ID, [k[0] for k in keys]),
            name=(sa.String(), [k[1] for k in keys]),
            value=(sa.Text(), [details[k] for k in keys]),
        ).subquery("v")
        held = sa.and_(cd.c.contact_id == v.c.cid, cd.c.name == v.c.name)
        logged = _log(
            rc,
            sa.select(
                *changes.rows(
                    v.c.cid,
                    sa.literal(changes.DETAIL, sa.String()) + v.c.name,
                    before=cd.c.value,
                    after=v.c.value,
                )
            )
            .select_from(v.outerjoin(cd, held))
            .where(sa.or_(cd.c.value.is_(None), cd.c.value != v.c.value)),
        )
        source = sa.select(v.c.cid, v.c.name, v.c.value, sa.literal(self.account_id, ID)).where(
            sa.true()
        )
        ins = dialect_insert(rc.conn, cd).from_select(
            ["contact_id", "name", "value", "account_id"], source
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["account_id", "contact_id", "name"],
            set_={"value": ins.excluded.value},
            where=cd.c.value != ins.excluded.value,
        ).returning(cd.c.contact_id)
        changes.reconcile(rc, logged, set(rc.conn.execute(stmt).scalars()))

    def _funnels(self, rc: RunContext, funnels: dict[tuple[int, int], int]) -> None:
        cf = t.contact_funnels
        keys = sorted(funnels)
        v = rows_from(
            rc.conn,
            cid=(ID, [k[0] for k in keys]),
            fid=(ID, [k[1] for k in keys]),
            sid=(ID, [funnels[k] for k in keys]),
        ).subquery("v")
        held = sa.and_(cf.c.contact_id == v.c.cid, cf.c.funnel_id == v.c.fid)
        logged = _log(
            rc,
            sa.select(
                *changes.rows(
                    v.c.cid,
                    "funnel",
                    ref=v.c.fid,
                    before=changes.as_text(cf.c.stage_id),
                    before_at=cf.c.entered_at,
                    after=changes.as_text(v.c.sid),
                    after_at=rc.now,
                )
            )
            .select_from(v.outerjoin(cf, held))
            .where(sa.or_(cf.c.stage_id.is_(None), cf.c.stage_id != v.c.sid)),
        )
        source = sa.select(
            v.c.cid,
            v.c.fid,
            v.c.sid,
            sa.literal(self.account_id, ID),
            sa.literal(rc.now, t.UTCDateTime()),
        ).where(sa.true())
        ins = dialect_insert(rc.conn, cf).from_select(
            ["contact_id", "funnel_id", "stage_id", "account_id", "entered_at"], source
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["account_id", "contact_id", "funnel_id"],
            set_={"stage_id": ins.excluded.stage_id, "entered_at": ins.excluded.entered_at},
            where=cf.c.stage_id != ins.excluded.stage_id,
        ).returning(cf.c.contact_id)
        changes.reconcile(rc, logged, set(rc.conn.execute(stmt).scalars()))


def _step(rc: RunContext, step: int) -> RunContext:
    return RunContext(
        conn=rc.conn,
        account_id=rc.account_id,
        job_id=rc.job_id,
        now=rc.now,
        as_of=rc.as_of,
        settings=rc.settings,
        step=step,
    )


def _split(rc: RunContext, unlogged: RunContext, step: int, created: set[int], keys: list):
    """(context, keys) of the contacts that existed (logged under `step`) and of those
    this chunk created (not logged), each when there are any; keys lead with the contact."""
    existing = [k for k in keys if k[0] not in created]
    new = [k for k in keys if k[0] in created]
    if existing:
        yield _step(rc, step), existing
    if new:
        yield unlogged, new


def _merge(records: list[Record]) -> dict[str, Record]:
    """By e-mail, in file order: a later row's fields win, lists add up."""
    merged: dict[str, Record] = {}
    for r in records:
        into = merged.get(r.email)
        if into is None:
            merged[r.email] = r
            continue
        into.fields.update(r.fields)
        into.tags += r.tags
        into.groups += r.groups
        into.owners += r.owners
        into.details.update(r.details)
        into.funnels.update(r.funnels)
    return merged


PK = ["account_id", "job_id", "step", "contact_id", "field", "ref"]


def _log(rc: RunContext, select: sa.Select) -> set[int] | None:
    """INSERT … SELECT of what a step is about to change into the change log (as
    changes.log_changes). A contact the file names again in a later chunk changes again
    under the same step: its row keeps the first `before` and takes the new `after`, so a
    revert gives back the value from before the import."""
    if not rc.settings.change_log:
        return None
    source = select.subquery()
    constants = changes.stamp(rc, ACTION)
    ins = dialect_insert(rc.conn, log).from_select(
        [*changes.LOGGED, *constants],
        sa.select(*[source.c[n] for n in changes.LOGGED], *constants.values()).where(sa.true()),
    )
    ins = ins.on_conflict_do_update(
        index_elements=PK, set_={"after": ins.excluded.after, "after_at": ins.excluded.after_at}
    )
    return set(rc.conn.execute(ins.returning(log.c.contact_id)).scalars())


def prepare(conn: Connection, row) -> Importer:
    return Importer(conn, row.account_id, row.id, row.import_spec)
