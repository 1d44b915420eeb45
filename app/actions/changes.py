"""The change log: what an action records of each change it makes, and how a change is
given back.

An action logs before it changes anything: one INSERT … SELECT of the rows it is about to
change, with their values now (`before`) and the values it will leave (`after`), into
`change_log` under the job and the action's step. Then it changes them as it always did,
and `reconcile` drops the log rows of contacts its statement did not change after all
(a concurrent writer got there first). On PostgreSQL the logging SELECT locks the rows it
reads where they exist (FOR UPDATE), so nobody changes them between the two statements.

A `Family` knows one kind of change (a contact column, a link-table row, a funnel stage,
a detail, a coupon, a personal link): whether the state is still what a log row says the
job left (`holds`), what it is instead (`found`), and how to bring the state to a log
row's `after` (`restore`). A revert writes its own log rows (each a job's row with before
and after swapped, where it still holds) and restores them: so a revert is logged like any
job, and reverting it re-applies.
"""

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app import tables as t
from app.db import dialect_insert, in_ids, insert_rows, is_postgres

log = t.change_log
c = t.contacts
TEXT = sa.Text()


def as_text(value) -> ColumnElement:
    """A value as the log stores it: the database's own text of it (so a value read back
    from a column compares equal to one written from Python)."""
    return sa.cast(value, TEXT)


def rows(
    contact_id,
    field,
    *,
    ref=0,
    before=None,
    before_at=None,
    after=None,
    after_at=None,
) -> list[ColumnElement]:
    """The columns of a log SELECT, labelled for `log_changes`."""

    def typed(v, type_):
        return v if isinstance(v, ColumnElement) else sa.literal(v, type_)

    return [
        typed(contact_id, sa.BigInteger()).label("contact_id"),
        typed(field, sa.String()).label("field"),
        typed(ref, sa.BigInteger()).label("ref"),
        typed(before, TEXT).label("before"),
        typed(before_at, t.UTCDateTime()).label("before_at"),
        typed(after, TEXT).label("after"),
        typed(after_at, t.UTCDateTime()).label("after_at"),
    ]


LOGGED = ["contact_id", "field", "ref", "before", "before_at", "after", "after_at"]


def stamp(rc, action: str, **more) -> dict:
    """The columns every log row of rc's step has (as bound values), and `more`."""
    return {
        "account_id": sa.literal(rc.account_id, sa.BigInteger()),
        "job_id": sa.literal(rc.job_id, sa.BigInteger()),
        "step": sa.literal(rc.step, sa.Integer()),
        "action": sa.literal(action, sa.String()),
        "at": sa.literal(rc.now, t.UTCDateTime()),
        **more,
    }


def log_changes(rc, action: str, select: sa.Select) -> set[int] | None:
    """INSERT … SELECT of what an action is about to change (`select`'s columns from
    `rows`) as the log of the action's step; the contacts logged. None when the job keeps
    no log (a dry run, or the benchmark's switch)."""
    if rc.job_id is None or not rc.settings.change_log:
        return None
    source = select.subquery()
    constants = stamp(rc, action)
    stmt = (
        sa.insert(log)
        .from_select(
            [*LOGGED, *constants],
            sa.select(*[source.c[n] for n in LOGGED], *constants.values()).where(sa.true()),
        )
        .returning(log.c.contact_id)
    )
    return set(rc.conn.execute(stmt).scalars())


def log_rows(rc, action: str, entries: list[dict]) -> None:
    """Log rows built in Python (coupons and links, whose values Python makes): one
    INSERT … SELECT of the chunk's rows, a parameter a column."""
    if rc.job_id is None or not rc.settings.change_log or not entries:
        return
    constants = {
        "account_id": rc.account_id,
        "job_id": rc.job_id,
        "step": rc.step,
        "action": action,
        "at": rc.now,
    }
    rc.conn.execute(insert_rows(rc.conn, log, entries, constants))


def reconcile(rc, logged: set[int] | None, changed: set[int]) -> None:
    """Drop the log rows of contacts the action's statement did not change after all."""
    if not logged:
        return
    extra = logged - changed
    if extra:
        rc.conn.execute(
            sa.delete(log).where(*of_step(rc), in_ids(rc.conn, log.c.contact_id, extra))
        )


def insert_logged(rc, action: str, ins, field: str, ref: str, at: str, log_first: sa.Select):
    """INSERT … ON CONFLICT DO NOTHING of link-table rows (`ins`, returning nothing yet),
    logged; the contacts changed. On PostgreSQL the rows the INSERT returns are the log, in
    one statement (a data-modifying CTE): exact, and with no probe for the rows that are
    missing, which a tag made at job start, without statistics yet, planned as a scan of
    every row of the tag for every contact. Elsewhere `log_first` (rows()' columns: the
    rows about to be added) is logged first, then reconciled."""
    table = ins.table
    if rc.job_id is not None and rc.settings.change_log and is_postgres(rc.conn):
        added = ins.returning(
            table.c.contact_id.label("contact_id"),
            table.c[ref].label("ref"),
            table.c[at].label("at"),
        ).cte("added")
        constants = stamp(
            rc, action, field=sa.literal(field, sa.String()), after=sa.literal("1", TEXT)
        )
        select = sa.select(added.c.contact_id, added.c.ref, added.c.at, *constants.values())
        stmt = (
            sa.insert(log)
            .from_select(["contact_id", "ref", "after_at", *constants], select)
            .add_cte(added, nest_here=True)
            .returning(log.c.contact_id)
        )
        return set(rc.conn.execute(stmt).scalars())
    logged = log_changes(rc, action, log_first)
    changed = set(rc.conn.execute(ins.returning(table.c.contact_id)).scalars())
    reconcile(rc, logged, changed)
    return changed


def delete_logged(rc, action: str, table: sa.Table, where: list, field, **values) -> set[int]:
    """DELETE the rows of `table` matching `where`, logged first (`values`: the log's
    before / before_at / ref of each row); the contacts changed."""
    logged = log_changes(
        rc,
        action,
        locked(rc, sa.select(*rows(table.c.contact_id, field, **values)).where(*where), table),
    )
    stmt = sa.delete(table).where(*where).returning(table.c.contact_id)
    changed = set(rc.conn.execute(stmt).scalars())
    reconcile(rc, logged, changed)
    return changed


def update_logged(rc, action: str, column: str, mine: list, value) -> set[int]:
    """UPDATE contacts' `column` to `value` (a constant or an expression over the row)
    where `mine` holds, logged; the contacts changed.

    On PostgreSQL one statement: the UPDATE reads each row's value before it (a FROM of
    the same rows), returns it, and a data-modifying CTE inserts the log: no separate pass
    to read and lock the rows first. A row another transaction changed in between fails
    the UPDATE's recheck (its value is no longer the one read) and is left out; it is
    tried again, a few times, with its new value. SQLite (one writer) logs first, then
    updates."""
    col = c.c[column]
    after = value if isinstance(value, ColumnElement) else sa.literal(value, col.type)
    logging = rc.job_id is not None and rc.settings.change_log
    if not (logging and is_postgres(rc.conn)):
        logged = log_changes(
            rc,
            action,
            sa.select(*rows(c.c.id, column, before=as_text(col), after=as_text(after))).where(
                *mine
            ),
        )
        stmt = sa.update(c).where(*mine).values({column: value, "updated_at": rc.now})
        changed = set(rc.conn.execute(stmt.returning(c.c.id)).scalars())
        reconcile(rc, logged, changed)
        return changed
    changed: set[int] = set()
    where = mine  # [account, chunk ids, predicate]
    for _ in range(MAX_RETRIES):
        changed |= _update_and_log(rc, action, column, where, value)
        left = set(rc.conn.execute(sa.select(c.c.id).where(*where)).scalars()) - changed
        if not left:
            break
        where = [mine[0], in_ids(rc.conn, c.c.id, sorted(left)), *mine[2:]]
    return changed


MAX_RETRIES = 4


def _update_and_log(rc, action: str, column: str, mine: list, value) -> set[int]:
    col = c.c[column]
    old = sa.select(c.c.id.label("id"), col.label("before")).where(*mine).subquery("old")
    changed = (
        sa.update(c)
        .where(
            c.c.id == old.c.id,
            c.c.account_id == rc.account_id,
            col.is_not_distinct_from(old.c.before),
        )
        .values({column: value, "updated_at": rc.now})
        .returning(c.c.id.label("contact_id"), old.c.before.label("before"), col.label("after"))
        .cte("changed")
    )
    constants = stamp(
        rc, action, field=sa.literal(column, sa.String()), ref=sa.literal(0, sa.BigInteger())
    )
    select = sa.select(
        changed.c.contact_id,
        as_text(changed.c.before),
        as_text(changed.c.after),
        *constants.values(),
    )
    stmt = (
        sa.insert(log)
        .from_select(["contact_id", "before", "after", *constants], select)
        .add_cte(changed, nest_here=True)
        .returning(log.c.contact_id)
    )
    return set(rc.conn.execute(stmt).scalars())


def locked(rc, select: sa.Select, *of) -> sa.Select:
    """`select` locking the rows it reads of `of` (PostgreSQL; SQLite has one writer)."""
    if rc.job_id is None or not rc.settings.change_log or not is_postgres(rc.conn):
        return select
    return select.with_for_update(of=of)


def of_step(rc, row=log, lo: int | None = None, hi: int | None = None) -> list:
    """The log rows of rc's job and step, within the contacts lo..hi."""
    where = [row.c.account_id == rc.account_id, row.c.job_id == rc.job_id, row.c.step == rc.step]
    if lo is not None:
        where += [row.c.contact_id >= lo, row.c.contact_id <= hi]
    return where


def extra(value: dict | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


# --- families: how a kind of change is checked and restored ----------------------------


class Family:
    def holds(self, rc, o) -> ColumnElement[bool]:
        """The state is what log row `o` says the job left (`o.after`)."""
        raise NotImplementedError

    def found(self, rc, o) -> ColumnElement:
        """The state now, as text, for a conflict's output row."""
        raise NotImplementedError

    def restore(self, rc, lo: int, hi: int) -> None:
        """Bring the state to `after` for the log rows of rc's job and step in lo..hi."""
        raise NotImplementedError


@dataclass(frozen=True)
class Column(Family):
    """A contact column (opt-ins, validity, state, score, sex, deleted; an import's text
    fields, dates)."""

    column: str

    def holds(self, rc, o):
        # NULL: a field an import filled was empty before it
        return as_text(c.c[self.column]).is_not_distinct_from(o.c.after)

    def found(self, rc, o):
        return sa.func.coalesce(as_text(c.c[self.column]), "absent")

    def restore(self, rc, lo, hi):
        kind = c.c[self.column].type
        after = sa.cast(log.c.after, kind)
        if not is_postgres(rc.conn) and isinstance(kind, sa.Date | sa.DateTime | t.UTCDateTime):
            after = log.c.after  # SQLite keeps dates as text; its CAST AS DATE makes a number
        rc.conn.execute(
            sa.update(c)
            .where(
                c.c.account_id == rc.account_id,
                c.c.id == log.c.contact_id,
                *of_step(rc, log, lo, hi),
            )
            .values({self.column: after, "updated_at": rc.now})
        )


def _substr(o, prefix: str):
    return sa.func.substr(o.c.field, len(prefix) + 1)


@dataclass(frozen=True)
class Link(Family):
    """A row (contact, thing) of a link table (tags, groups, owners), with its time; a
    funnel's row holds the stage too (`stage`)."""

    table: sa.Table
    thing: str
    at: str = "added_at"
    stage: str | None = None

    def _row(self, o):
        tb = self.table
        return [
            tb.c.account_id == o.c.account_id,
            tb.c.contact_id == o.c.contact_id,
            tb.c[self.thing] == o.c.ref,
        ]

    def holds(self, rc, o):
        tb = self.table
        present = [tb.c[self.at] == o.c.after_at]
        if self.stage:
            present.append(as_text(tb.c[self.stage]) == o.c.after)
        return sa.case(
            (o.c.after.is_(None), ~sa.exists().where(*self._row(o))),
            else_=sa.exists().where(*self._row(o), *present),
        )

    def found(self, rc, o):
        tb = self.table
        value = as_text(tb.c[self.stage]) if self.stage else as_text(tb.c[self.at])
        now = sa.select(value).where(*self._row(o)).limit(1).scalar_subquery()
        return sa.func.coalesce(now, "absent")

    def restore(self, rc, lo, hi):
        tb = self.table
        mine = of_step(rc, log, lo, hi)
        conn = rc.conn
        conn.execute(
            sa.delete(tb).where(
                tb.c.account_id == rc.account_id,
                tb.c.contact_id >= lo,
                tb.c.contact_id <= hi,
                sa.exists().where(
                    *mine,
                    log.c.contact_id == tb.c.contact_id,
                    log.c.ref == tb.c[self.thing],
                    log.c.after.is_(None),
                ),
            )
        )
        columns = ["contact_id", self.thing, "account_id", self.at]
        values = [log.c.contact_id, log.c.ref, log.c.account_id, log.c.after_at]
        if self.stage:
            columns.append(self.stage)
            values.append(sa.cast(log.c.after, tb.c[self.stage].type))
        ins = dialect_insert(conn, tb).from_select(
            columns, sa.select(*values).where(*mine, log.c.after.is_not(None))
        )
        if self.stage:
            ins = ins.on_conflict_do_update(
                index_elements=["account_id", "contact_id", self.thing],
                set_={self.stage: ins.excluded[self.stage], self.at: ins.excluded[self.at]},
            )
        else:
            ins = ins.on_conflict_do_nothing()
        conn.execute(ins)


DETAIL = "detail:"


@dataclass(frozen=True)
class Detail(Family):
    """A detail (field `detail:NAME`)."""

    def _row(self, o):
        cd = t.contact_details
        return [
            cd.c.account_id == o.c.account_id,
            cd.c.contact_id == o.c.contact_id,
            cd.c.name == _substr(o, DETAIL),
        ]

    def holds(self, rc, o):
        cd = t.contact_details
        return sa.case(
            (o.c.after.is_(None), ~sa.exists().where(*self._row(o))),
            else_=sa.exists().where(*self._row(o), cd.c.value == o.c.after),
        )

    def found(self, rc, o):
        cd = t.contact_details
        now = sa.select(cd.c.value).where(*self._row(o)).limit(1).scalar_subquery()
        return sa.func.coalesce(now, "absent")

    def restore(self, rc, lo, hi):
        cd = t.contact_details
        mine = of_step(rc, log, lo, hi)
        rc.conn.execute(
            sa.delete(cd).where(
                cd.c.account_id == rc.account_id,
                cd.c.contact_id >= lo,
                cd.c.contact_id <= hi,
                sa.exists().where(
                    *mine,
                    log.c.contact_id == cd.c.contact_id,
                    _substr(log, DETAIL) == cd.c.name,
                    log.c.after.is_(None),
                ),
            )
        )
        ins = dialect_insert(rc.conn, cd).from_select(
            ["contact_id", "name", "value", "account_id"],
            sa.select(log.c.contact_id, _substr(log, DETAIL), log.c.after, log.c.account_id).where(
                *mine, log.c.after.is_not(None)
            ),
        )
        rc.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["account_id", "contact_id", "name"],
                set_={"value": ins.excluded.value},
            )
        )


COUPON = "coupon:"


@dataclass(frozen=True)
class Coupon(Family):
    """A contact's coupon of one name (field `coupon:NAME_KEY`): `before` / `after` hold
    its code, `*_extra` the rest of the row."""

    def _row(self, o):
        cp = t.coupons
        return [
            cp.c.account_id == o.c.account_id,
            cp.c.contact_id == o.c.contact_id,
            cp.c.name_key == _substr(o, COUPON),
        ]

    def holds(self, rc, o):
        cp = t.coupons
        return sa.case(
            (o.c.after.is_(None), ~sa.exists().where(*self._row(o))),
            else_=sa.exists().where(*self._row(o), cp.c.code == o.c.after),
        )

    def found(self, rc, o):
        cp = t.coupons
        now = sa.select(cp.c.code).where(*self._row(o)).limit(1).scalar_subquery()
        return sa.func.coalesce(now, "absent")

    def restore(self, rc, lo, hi):
        cp = t.coupons
        entries = rc.conn.execute(
            sa.select(log.c.contact_id, log.c.field, log.c.after, log.c.after_extra).where(
                *of_step(rc, log, lo, hi)
            )
        ).all()
        if not entries:
            return
        for field in {e.field for e in entries}:  # one name a step
            rc.conn.execute(
                sa.delete(cp).where(
                    cp.c.account_id == rc.account_id,
                    cp.c.name_key == field[len(COUPON) :],
                    in_ids(rc.conn, cp.c.contact_id, [e.contact_id for e in entries]),
                )
            )
        _give_back(
            rc,
            cp,
            [e for e in entries if e.after is not None],
            lambda e, kept: {
                "contact_id": e.contact_id,
                "code": e.after,
                "name": kept["name"],
                "name_key": e.field[len(COUPON) :],
                "valid_until": _when(kept.get("valid_until")),
                "job_id": kept.get("job_id"),
                "created_at": _when(kept["created_at"]),
            },
        )


@dataclass(frozen=True)
class PersonalLink(Family):
    """A personal link (field `link`): `after` holds its token while it exists (`before`
    once a revert took it away), `*_extra` its URL."""

    def holds(self, rc, o):
        lk = t.links
        return sa.case(
            (o.c.after.is_(None), ~sa.exists().where(lk.c.token == o.c.before)),
            else_=sa.exists().where(lk.c.token == o.c.after),
        )

    def found(self, rc, o):
        return sa.literal("absent")

    def restore(self, rc, lo, hi):
        lk = t.links
        mine = of_step(rc, log, lo, hi)
        rc.conn.execute(
            sa.delete(lk).where(
                lk.c.account_id == rc.account_id,
                lk.c.token.in_(sa.select(log.c.before).where(*mine, log.c.after.is_(None))),
            )
        )
        entries = rc.conn.execute(
            sa.select(log.c.contact_id, log.c.after, log.c.after_extra).where(
                *mine, log.c.after.is_not(None)
            )
        ).all()
        _give_back(
            rc,
            lk,
            entries,
            lambda e, kept: {
                "contact_id": e.contact_id,
                "token": e.after,
                "url": kept["url"],
                "job_id": kept.get("job_id"),
                "created_at": _when(kept["created_at"]),
            },
        )


def _give_back(rc, table: sa.Table, entries, build) -> None:
    """INSERT the rows `build(entry, its after_extra)` makes of log entries (a coupon, a
    link given back whole), skipping any whose key is taken since."""
    given = [build(e, json.loads(e.after_extra)) for e in entries]
    if given:
        rc.conn.execute(
            insert_rows(
                rc.conn, table, given, {"account_id": rc.account_id}
            ).on_conflict_do_nothing()
        )


def _when(value: str | None):
    from datetime import datetime

    return None if value is None else datetime.fromisoformat(value)


COLUMNS = (
    *("email_opt_in", "phone_opt_in", "email_valid", "state", "score", "sex", "deleted"),
    # what an import sets besides
    *("first_name", "last_name", "phone", "company", "city", "country", "birth_date"),
    "created_at",
)
LINKS = {
    "tag": Link(t.contact_tags, "tag_id"),
    "group": Link(t.group_members, "group_id"),
    "owner": Link(t.contact_owners, "user_id"),
    "funnel": Link(t.contact_funnels, "funnel_id", at="entered_at", stage="stage_id"),
}


def family_of(field: str) -> Family:
    """The family of a log row's field."""
    if field in COLUMNS:
        return Column(field)
    if field in LINKS:
        return LINKS[field]
    if field.startswith(DETAIL):
        return Detail()
    if field.startswith(COUPON):
        return Coupon()
    if field == "link":
        return PersonalLink()
    raise ValueError(f"no family for the logged field {field!r}")
