"""Every table of Audience: the one metadata Alembic migrates.

Every account-owned table carries `account_id` (row-level security keeps each account to
its own rows on PostgreSQL: migrations 0003 and 0004), and every unique key includes it;
the job engine's own tables lead their primary keys with it.
Link tables are keyed by (contact, thing) or (thing, contact) and indexed
(account, thing, contact), so "contacts having X" is an index-only scan of one account's
slice (migration 0006) and "does contact C have X" an index probe; events are indexed the
same way for the aggregates a selection asks for. Every lookup index a count uses leads
with `account_id`.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator

from app.jobs.state import FINISHED

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python; timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _id() -> sa.Column:
    """The id of a table that is not an account's: accounts, and API keys (looked up before
    the account is known)."""
    return sa.Column("id", ID, primary_key=True)


def _owned_id() -> sa.Column:
    """The id of an account's row: unique on its own (a sequence makes it), keyed together
    with `account_id` (`_owned_key`)."""
    return sa.Column("id", ID, nullable=False, autoincrement=True)


def _owned_key(*columns: str) -> sa.PrimaryKeyConstraint:
    """A primary key that leads with the account (see the module's docstring)."""
    return sa.PrimaryKeyConstraint("account_id", *columns)


def _column(name: str, *, nullable: bool = False) -> sa.Column:
    """An id column: a reference to another of the account's rows (its foreign key is
    `_owned_ref`), or one kept without a foreign key (the job engine's tables)."""
    return sa.Column(name, ID, nullable=nullable)


def _owned_ref(column: str, target: str, *, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    """(account_id, column) → target(account_id, id): a row refers only to rows of its own
    account, and the key a distributed database shards on is in every foreign key."""
    return sa.ForeignKeyConstraint(
        ["account_id", column], [f"{target}.account_id", f"{target}.id"], ondelete=ondelete
    )


def _account() -> sa.Column:
    return sa.Column(
        "account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )


@compiles(sa.PrimaryKeyConstraint, "sqlite")
def _sqlite_primary_key(constraint, compiler, **kw) -> str:
    """On SQLite, the key of a table with its own id is written as PRIMARY KEY (id): an
    INTEGER PRIMARY KEY of one column is the row id, which SQLite numbers itself (it has
    no sequences). (account_id, id) gets UNIQUE (account_id, id) beside it, what the
    composite foreign keys refer to. Alembic does not compare primary keys, and the unique
    key is unnamed, so the schema still matches this metadata."""
    columns = [column.name for column in constraint.columns]
    if columns[:1] != ["account_id"] or "id" not in columns:
        return compiler.visit_primary_key_constraint(constraint, **kw)
    name = compiler.preparer.format_constraint(constraint)
    if columns == ["account_id", "id"]:
        return f"CONSTRAINT {name} PRIMARY KEY (id), UNIQUE (account_id, id)"
    return f"CONSTRAINT {name} PRIMARY KEY (id)"


def _created() -> sa.Column:
    return sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow)


accounts = sa.Table(
    "accounts",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    _created(),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _id(),
    _account(),
    # sha256 of the key; the key itself is never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    # who a key is, for people: a job's created_by
    sa.Column("label", sa.String(255), nullable=False, server_default="default"),
    # full: everything; read: GETs, count, preview (anything else is a 403)
    sa.Column("scope", sa.String(8), nullable=False, server_default="full"),
    _created(),
    sa.Column("last_used_at", UTCDateTime),
)

users = sa.Table(
    "users",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("email", sa.String(254), nullable=False),
    _created(),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "email"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("first_name", sa.Text),
    sa.Column("last_name", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("company", sa.Text),
    sa.Column("city", sa.Text),
    sa.Column("country", sa.String(2)),
    sa.Column("birth_date", sa.Date),
    sa.Column("sex", sa.String(8), nullable=False, server_default="unknown"),
    sa.Column("score", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("state", sa.String(16), nullable=False, server_default="PROSPECT"),
    sa.Column("email_opt_in", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("phone_opt_in", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("email_valid", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "email"),
    # a count's live contacts: an index-only scan (account_id = ? AND deleted IS false)
    sa.Index("ix_contacts_account_deleted_id", "account_id", "deleted", "id"),
)

tags = sa.Table(
    "tags",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("name", sa.String(255), nullable=False),
    # lower-cased name: tags are matched ignoring case
    sa.Column("name_key", sa.String(255), nullable=False),
    _created(),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "name_key"),
)

contact_tags = sa.Table(
    "contact_tags",
    metadata,
    _column("contact_id"),
    _column("tag_id"),
    _account(),
    sa.Column("added_at", UTCDateTime, nullable=False),
    _owned_key("contact_id", "tag_id"),
    _owned_ref("contact_id", "contacts"),
    _owned_ref("tag_id", "tags"),
    sa.Index("ix_contact_tags_account_tag_contact", "account_id", "tag_id", "contact_id"),
)

contact_owners = sa.Table(
    "contact_owners",
    metadata,
    _column("contact_id"),
    _column("user_id"),
    _account(),
    sa.Column("added_at", UTCDateTime, nullable=False),
    _owned_key("contact_id", "user_id"),
    _owned_ref("contact_id", "contacts"),
    _owned_ref("user_id", "users"),
    sa.Index("ix_contact_owners_account_user_contact", "account_id", "user_id", "contact_id"),
)

funnels = sa.Table(
    "funnels",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(255), nullable=False),
    _created(),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "name_key"),
)

stages = sa.Table(
    "stages",
    metadata,
    _owned_id(),
    _account(),
    _column("funnel_id"),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(255), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    _owned_key("id"),
    _owned_ref("funnel_id", "funnels"),
    sa.UniqueConstraint("account_id", "funnel_id", "name_key"),
)

contact_funnels = sa.Table(
    "contact_funnels",
    metadata,
    _column("contact_id"),
    _column("funnel_id"),
    _column("stage_id"),
    _account(),
    sa.Column("entered_at", UTCDateTime, nullable=False),
    _owned_key("contact_id", "funnel_id"),
    _owned_ref("contact_id", "contacts"),
    _owned_ref("funnel_id", "funnels"),
    _owned_ref("stage_id", "stages"),
    sa.Index(
        "ix_contact_funnels_account_funnel_stage_contact",
        "account_id",
        "funnel_id",
        "stage_id",
        "contact_id",
    ),
)

mailings = sa.Table(
    "mailings",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    _created(),
    _owned_key("id"),
)

mailing_recipients = sa.Table(
    "mailing_recipients",
    metadata,
    _column("mailing_id"),
    _column("contact_id"),
    _account(),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.Column("opened_at", UTCDateTime),
    sa.Column("clicked_at", UTCDateTime),
    sa.Column("bounced", sa.Boolean, nullable=False, server_default=sa.false()),
    _owned_key("mailing_id", "contact_id"),
    _owned_ref("mailing_id", "mailings"),
    _owned_ref("contact_id", "contacts"),
    # a contact's mailings, and deleting a contact
    sa.Index("ix_mailing_recipients_account_contact", "account_id", "contact_id"),
    sa.Index(
        "ix_mailing_recipients_account_mailing_contact",
        "account_id",
        "mailing_id",
        "contact_id",
        postgresql_include=["opened_at", "clicked_at", "bounced"],
    ),
)

groups = sa.Table(
    "groups",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(255), nullable=False),
    _created(),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "name_key"),
)

group_members = sa.Table(
    "group_members",
    metadata,
    _column("group_id"),
    _column("contact_id"),
    _account(),
    sa.Column("added_at", UTCDateTime, nullable=False),
    # (account, group, contact): the members of a group, an index-only scan
    _owned_key("group_id", "contact_id"),
    _owned_ref("group_id", "groups"),
    _owned_ref("contact_id", "contacts"),
    sa.Index("ix_group_members_account_contact", "account_id", "contact_id"),
)

contact_details = sa.Table(
    "contact_details",
    metadata,
    _column("contact_id"),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    _account(),
    _owned_key("contact_id", "name"),
    _owned_ref("contact_id", "contacts"),
    sa.Index("ix_contact_details_account_name", "account_id", "name", "contact_id"),
)

# On PostgreSQL partitioned by month of occurred_at (migration 0009; the partitions,
# events_YYYY_MM and events_default, are app.events_partitions' and not declared here), so
# its key holds occurred_at. SQLite keeps `id` alone as its key: only a lone INTEGER
# PRIMARY KEY numbers rows there (autogenerate compares no primary keys).
events = sa.Table(
    "events",
    metadata,
    _owned_id(),
    _account(),
    _column("contact_id"),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("products", sa.Text),
    sa.Column("details", sa.JSON(none_as_null=True)),
    _owned_key("occurred_at", "id"),
    _owned_ref("contact_id", "contacts"),
    # aggregates over a window of time, and over all time grouped by contact: index-only
    sa.Index(
        "ix_events_account_type_occurred",
        "account_id",
        "type",
        "occurred_at",
        postgresql_include=["contact_id", "value"],
    ),
    sa.Index(
        "ix_events_account_type_contact",
        "account_id",
        "type",
        "contact_id",
        "occurred_at",
        postgresql_include=["value"],
    ),
    sa.Index("ix_events_contact_type_occurred", "contact_id", "type", "occurred_at"),
    postgresql_partition_by="RANGE (occurred_at)",
)

rules = sa.Table(
    "rules",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(255), nullable=False),
    sa.Column("condition", sa.JSON(none_as_null=True)),
    sa.Column("actions", sa.JSON, nullable=False),
    _created(),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "name_key"),
)

segments = sa.Table(
    "segments",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(255), nullable=False),
    sa.Column("selection", sa.JSON, nullable=False),
    _created(),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "name_key"),
)

coupons = sa.Table(
    "coupons",
    metadata,
    _owned_id(),
    _account(),
    _column("contact_id"),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(255), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("valid_until", UTCDateTime),
    _column("job_id", nullable=True),
    _created(),
    _owned_key("id"),
    _owned_ref("contact_id", "contacts"),
    # jobs are never deleted but with their account (and its coupons)
    _owned_ref("job_id", "jobs"),
    sa.UniqueConstraint("account_id", "code"),
    sa.UniqueConstraint("account_id", "contact_id", "name_key"),
)

links = sa.Table(
    "links",
    metadata,
    _owned_id(),
    _account(),
    _column("contact_id"),
    _column("job_id", nullable=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    _created(),
    _owned_key("id"),
    _owned_ref("contact_id", "contacts"),
    _owned_ref("job_id", "jobs"),
    # a link is found by its account (in its address) and its token
    sa.UniqueConstraint("account_id", "token"),
)

# --- the job engine -------------------------------------------------------------------

# snapshot_taken: the job's members are in job_members. A finished job's are deleted in
# the background (app.jobs.repository.purge_snapshot), which sets it back to false.
# Its text is migration 0001's, to the character (tests/unit/test_job_state.py).
SNAPSHOT_TO_PURGE = "snapshot_taken AND status IN ({})".format(
    ", ".join(f"'{status}'" for status in FINISHED)
)

jobs = sa.Table(
    "jobs",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("selection", sa.JSON, nullable=False),
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("total", sa.BigInteger),
    sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("as_of", UTCDateTime, nullable=False),
    sa.Column("run_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("snapshot_taken", sa.Boolean, nullable=False, server_default=sa.false()),
    # keyset cursor: every snapshot member with contact_id <= cursor has been applied
    sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("enqueued_at", UTCDateTime),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("request_hash", sa.String(64)),
    # its story: what kind of job, named by whom, undoing which job
    sa.Column("kind", sa.String(16), nullable=False, server_default="actions"),
    sa.Column("name", sa.String(255)),
    sa.Column("created_by", sa.String(255)),
    sa.Column("reverts", sa.BigInteger().with_variant(sa.Integer, "sqlite")),
    # a revert: changes it left alone because they were changed again since
    sa.Column("conflicts", sa.BigInteger, nullable=False, server_default="0"),
    # the change log of the job is gone (purged after AUDIENCE_CHANGE_LOG_DAYS)
    sa.Column("log_purged", sa.Boolean, nullable=False, server_default=sa.false()),
    # an import: its file's header, mapping and options; its rows' outcome
    sa.Column("import_spec", sa.JSON),
    sa.Column("created", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected", sa.BigInteger, nullable=False, server_default="0"),
    _owned_key("id"),
    sa.UniqueConstraint("account_id", "idempotency_key"),
    # one revert a job
    sa.UniqueConstraint("account_id", "reverts"),
    sa.Index("ix_jobs_status", "status"),
    sa.Index(
        "ix_jobs_snapshot_to_purge",
        "id",
        postgresql_where=sa.text(SNAPSHOT_TO_PURGE),
        sqlite_where=sa.text(SNAPSHOT_TO_PURGE),
    ),
)

job_actions = sa.Table(
    "job_actions",
    metadata,
    _account(),
    _column("job_id"),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("affected", sa.BigInteger, nullable=False, server_default="0"),
    _owned_key("job_id", "position"),
    _owned_ref("job_id", "jobs"),
)


# The snapshot: one row per selected contact, taken by one INSERT … SELECT.
# job_members and job_output carry account_id and job_id without a foreign key: a
# snapshot inserts hundreds of thousands of rows in one statement, and a per-row
# constraint trigger was half its time. Rows of a job go with it in app.jobs (nothing
# else deletes jobs).
job_members = sa.Table(
    "job_members",
    metadata,
    _column("account_id"),
    _column("job_id"),
    _column("contact_id"),
    sa.PrimaryKeyConstraint("account_id", "job_id", "contact_id"),
)

# Generated coupons and links, listed by GET /v1/jobs/{id}/output.
job_output = sa.Table(
    "job_output",
    metadata,
    _column("account_id"),
    _column("job_id"),
    sa.Column("position", sa.Integer, nullable=False),
    _column("contact_id"),
    sa.Column("value", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "job_id", "position", "contact_id"),
)


# The change log: one row for every change a job made (a contact's field, flag, tag, stage,
# detail, coupon, link), written set-based in the chunk's own transaction, read by revert
# and by a contact's history. `step` numbers the job's actions as run (a rule's actions
# each a step of their own); `field` names what changed (a column, `tag`, `group`,
# `owner`, `funnel`, `detail:NAME`, `coupon:NAME`, `link`) and `ref` which tag, group,
# owner or funnel (0 otherwise). `before` / `after` are the values as text (NULL: absent),
# `*_at` a relation's own time (a tag's added_at, a stage's entered_at), `*_extra` what a
# coupon or a link needs to be given back whole. Kept AUDIENCE_CHANGE_LOG_DAYS after the
# job ends.
change_log = sa.Table(
    "change_log",
    metadata,
    _column("account_id"),
    _column("job_id"),
    sa.Column("step", sa.Integer, nullable=False),
    _column("contact_id"),
    sa.Column("field", sa.String(300), nullable=False),
    sa.Column("ref", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("before", sa.Text),
    sa.Column("before_at", UTCDateTime),
    sa.Column("after", sa.Text),
    sa.Column("after_at", UTCDateTime),
    sa.Column("before_extra", sa.Text),
    sa.Column("after_extra", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "job_id", "step", "contact_id", "field", "ref"),
    sa.Index("ix_change_log_account_id_contact_id", "account_id", "contact_id", "job_id"),
)


# An import's file, staged at submit (so any worker can run it): one row a CSV record,
# `line` the spreadsheet row it starts on (the header is 1), `cells` its cells as a JSON
# array. A chunk deletes the rows it applied; whatever is left goes when the job ends.
import_rows = sa.Table(
    "import_rows",
    metadata,
    _column("account_id"),
    _column("job_id"),
    sa.Column("line", sa.BigInteger, nullable=False),
    sa.Column("cells", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "job_id", "line"),
)

# An import's rejected rows: a row a problem (`seq` numbers a row's problems), with the
# column (its header) and the row as the file had it; GET /v1/jobs/{id}/errors.
import_errors = sa.Table(
    "import_errors",
    metadata,
    _column("account_id"),
    _column("job_id"),
    sa.Column("line", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("column", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("row", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("account_id", "job_id", "line", "seq"),
)

# Webhooks: where an account wants to hear of its jobs (app.webhooks). The secret signs
# each delivery, so it is kept as given (shown once, at creation).
webhooks = sa.Table(
    "webhooks",
    metadata,
    _owned_id(),
    _account(),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    _created(),
    _owned_key("id"),
)

# The outbox: one row for each event each webhook is to hear, written in the transaction
# that moved the job, so a delivery exists exactly when the move committed. `body` is the
# JSON sent on every attempt (the same `id` each time); `next_attempt_at` is when it is
# due (a claim moves it a lease ahead, so a worker dying mid-send loses nothing).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _owned_id(),
    _account(),
    _column("webhook_id"),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    # pending (to send, or to send again) | delivered | failed (gave up)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    _created(),
    sa.Column("finished_at", UTCDateTime),
    _owned_key("id"),
    _owned_ref("webhook_id", "webhooks"),
    sa.Index("ix_webhook_deliveries_status", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_account_id_webhook_id", "account_id", "webhook_id"),
)

# Every attempt to deliver: what GET /v1/webhooks/{id}/deliveries lists.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    _owned_id(),
    _account(),
    _column("delivery_id"),
    sa.Column("webhook_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    # succeeded (a 2xx) | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("response_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    _owned_key("id"),
    _owned_ref("delivery_id", "webhook_deliveries"),
    # deleting a webhook's deliveries deletes their attempts
    sa.Index("ix_webhook_attempts_account_delivery", "account_id", "delivery_id"),
    sa.Index("ix_webhook_attempts_account_id_webhook_id_id", "account_id", "webhook_id", "id"),
)
