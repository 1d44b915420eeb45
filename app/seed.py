"""Realistic demo data, fast enough for a million contacts.

`seed(engine, account_id, n)` adds n contacts to an existing account, with tags,
funnel stages, owners, groups, details, mailings (with opens, clicks and bounces) and
events. Speed comes from three things:

* Faker is called only to fill small pools (names per locale and sex, cities,
  companies, phone numbers); every row then samples those pools with `random`.
* Contact ids are taken up front (`nextval` on PostgreSQL, `max(id) + 1` inside the
  write transaction on SQLite), so every related row of a batch is generated with
  its contact row, in one pass, and memory is bounded by the batch size.
* PostgreSQL gets COPY (psycopg 3) from two writer threads, so generating the next
  batch overlaps the server storing the last two; where the role may, foreign-key
  checks are skipped (see `_CopySink`). SQLite gets Core multi-row inserts.

Each batch is committed on its own: an interrupted run leaves whole batches behind.
E-mail addresses embed the contact id, so they are unique in the account and a
second run into the same account never collides with the first.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import re
import threading
import time
import unicodedata
from bisect import bisect
from datetime import UTC, date, datetime
from itertools import accumulate
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app import tables as t
from app.db import is_postgres
from app.names import name_key

DAY = 86_400
YEAR = 365 * DAY

# locale, weight, country, company TLD, free mail domains with weights
LOCALES: tuple[tuple[str, int, str, str, tuple[tuple[str, int], ...]], ...] = (
    (
        "pl_PL",
        34,
        "PL",
        "pl",
        (
            ("gmail.com", 30),
            ("wp.pl", 22),
            ("onet.pl", 16),
            ("o2.pl", 10),
            ("interia.pl", 10),
            ("outlook.com", 6),
            ("icloud.com", 4),
            ("yahoo.com", 2),
        ),
    ),
    (
        "en_US",
        20,
        "US",
        "com",
        (
            ("gmail.com", 45),
            ("yahoo.com", 15),
            ("icloud.com", 12),
            ("outlook.com", 12),
            ("hotmail.com", 10),
            ("aol.com", 6),
        ),
    ),
    (
        "de_DE",
        15,
        "DE",
        "de",
        (
            ("gmx.de", 25),
            ("gmail.com", 25),
            ("web.de", 22),
            ("t-online.de", 12),
            ("outlook.de", 8),
            ("yahoo.de", 8),
        ),
    ),
    (
        "en_GB",
        12,
        "GB",
        "co.uk",
        (
            ("gmail.com", 40),
            ("hotmail.co.uk", 15),
            ("outlook.com", 12),
            ("yahoo.co.uk", 12),
            ("btinternet.com", 11),
            ("icloud.com", 10),
        ),
    ),
    (
        "fr_FR",
        10,
        "FR",
        "fr",
        (
            ("gmail.com", 35),
            ("orange.fr", 20),
            ("free.fr", 14),
            ("hotmail.fr", 12),
            ("laposte.net", 10),
            ("sfr.fr", 9),
        ),
    ),
    (
        "es_ES",
        5,
        "ES",
        "es",
        (
            ("gmail.com", 50),
            ("hotmail.es", 20),
            ("yahoo.es", 10),
            ("outlook.es", 10),
            ("telefonica.net", 10),
        ),
    ),
    (
        "it_IT",
        4,
        "IT",
        "it",
        (
            ("gmail.com", 45),
            ("libero.it", 20),
            ("hotmail.it", 12),
            ("virgilio.it", 10),
            ("alice.it", 8),
            ("tiscali.it", 5),
        ),
    ),
)

# Most common first: tag k is picked with weight 1 / k**1.15 (a Zipf-like long tail).
TAGS = (
    "newsletter",
    "lead-magnet",
    "black-friday",
    "webinar",
    "facebook-ads",
    "ebook-download",
    "google-ads",
    "abandoned-cart",
    "VIP",
    "trial",
    "instagram",
    "summer-sale",
    "referral",
    "organic",
    "cyber-monday",
    "b2c",
    "b2b",
    "christmas-2025",
    "coupon-user",
    "mobile-app",
    "loyalty-bronze",
    "event-attendee",
    "linkedin",
    "survey-responder",
    "churn-risk",
    "high-value",
    "loyalty-silver",
    "demo-requested",
    "inactive-90d",
    "tiktok",
    "reactivated",
    "nps-promoter",
    "wholesale",
    "podcast",
    "loyalty-gold",
    "beta-tester",
    "partner-lead",
    "nps-detractor",
    "influencer",
    "Press",
)
TAGS_PER_CONTACT = (24, 26, 20, 13, 9, 5, 3)  # weights for 0..6 tags

FUNNELS = (
    ("Sales", ("Lead", "Qualified", "Offer", "Negotiation", "Won", "Lost"), (40, 22, 14, 8, 10, 6)),
    ("Onboarding", ("Signed up", "Activated", "Engaged", "Churned"), (30, 30, 25, 15)),
)

GROUPS = ("Blacklist", "Partners", "Webinar 2026")

# Sales reps owning contacts, with how much of the book each one has.
USERS = (
    ("anna.kowalska@audience-demo.example", 30),
    ("tom.baker@audience-demo.example", 22),
    ("julia.schmidt@audience-demo.example", 16),
    ("pierre.martin@audience-demo.example", 12),
    ("piotr.nowak@audience-demo.example", 10),
    ("emma.wilson@audience-demo.example", 6),
    ("lucia.garcia@audience-demo.example", 4),
)

# One mailing a month over the last year, named for its month (January first).
MAILINGS = (
    "New year, new plan",
    "Valentine's Day gift ideas",
    "Spring collection preview",
    "Easter deals",
    "Newsletter: May",
    "Summer sale -30%",
    "Newsletter: July",
    "Back to school",
    "Webinar invitation",
    "Newsletter: October",
    "Black Friday early access",
    "Christmas gift guide",
)

PRODUCTS = (
    "running shoes",
    "yoga mat",
    "water bottle",
    "fitness tracker",
    "wireless earbuds",
    "rain jacket",
    "hiking backpack",
    "trail socks",
    "coffee grinder",
    "french press",
    "espresso beans",
    "ceramic mug",
    "linen shirt",
    "denim jacket",
    "wool scarf",
    "leather wallet",
    "sunglasses",
    "phone case",
    "usb-c charger",
    "laptop sleeve",
    "desk lamp",
    "notebook a5",
    "fountain pen",
    "scented candle",
    "bath towel",
    "bed linen set",
    "cast iron pan",
    "chef knife",
    "cutting board",
    "tea sampler",
    "protein bar box",
    "vitamin d3",
    "face cream",
    "shampoo 500ml",
    "gift card 50",
    "gift card 100",
    "kids sneakers",
    "board game",
    "puzzle 1000",
    "smart plug",
)

EVENT_TYPES = (("VISIT", 45), ("PURCHASE", 20), ("CART", 20), ("OTHER", 10), ("CANCELLATION", 5))

PLANS = (("free", 60), ("pro", 30), ("enterprise", 10))
SOURCES = (
    "web",
    "facebook",
    "google",
    "referral",
    "import",
    "pos",
    "event",
    "api",
    "landing-page",
    "instagram",
)
ODD_NUMBERS = ("n/a", "1 200", "12,5k", "-", "unknown", "TBD")
ODD_DATES = ("31/12/2024", "unknown", "2024-02-30", "yesterday", "0000-00-00", "03.11.2025")

_TRANSLIT = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "ı": "i",
    }
)
_LEGAL = {
    "sp",
    "z",
    "o",
    "oo",
    "sa",
    "sc",
    "sk",
    "spk",
    "gmbh",
    "ag",
    "kg",
    "co",
    "kgaa",
    "ohg",
    "mbh",
    "ltd",
    "plc",
    "llc",
    "inc",
    "and",
    "und",
    "et",
    "e",
    "y",
    "sarl",
    "sas",
    "snc",
    "srl",
    "spa",
    "sl",
    "scoop",
    "s",
    "c",
    "figli",
    "group",
    "grupa",
    "fils",
    "the",
    "gbr",
    "ug",
    "eg",
    "ev",
    "sapa",
    "sca",
    "ssp",
}

BATCH_POSTGRES = 20_000
BATCH_SQLITE = 5_000


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    return "".join(ch for ch in text if ch.isascii())


def _slug(text: str) -> str:
    return "".join(ch for ch in _ascii(text).lower() if ch.isalnum())


def _company_domain(company: str, tld: str) -> str | None:
    words = [w for w in re.findall(r"[a-z0-9]+", _ascii(company).lower()) if w not in _LEGAL]
    return "-".join(words[:2]) + "." + tld if words else None


def _cum(weights) -> tuple[list[float], float]:
    cum = list(accumulate(weights))
    return cum, cum[-1]


class _Locale:
    """Pools for one locale: (name, e-mail slug) per sex, cities, companies, phones."""

    def __init__(self, spec, rng: random.Random, scale: float):
        from faker import Faker

        locale, _, self.country, tld, domains = spec
        fake = Faker(locale)
        fake.seed_instance(rng.randrange(2**32))
        for provider in fake.get_providers():
            # Faker builds it_IT's city list from a set: order it, or runs with one seed
            # would still differ (with PYTHONHASHSEED)
            if isinstance(getattr(provider, "cities", None), list):
                provider.cities = sorted(provider.cities)

        def names(fn, size):
            out = {}
            for _ in range(size):
                name = fn()
                slug = _slug(name)
                if slug:
                    out.setdefault(name, slug)
            return list(out.items())

        n_first, n_last = max(80, int(1500 * scale)), max(120, int(2500 * scale))
        self.first = (names(fake.first_name_female, n_first), names(fake.first_name_male, n_first))
        self.last = (names(fake.last_name_female, n_last), names(fake.last_name_male, n_last))
        # dict.fromkeys, not a set: a set's order changes with PYTHONHASHSEED
        cities = dict.fromkeys(fake.city() for _ in range(max(40, int(800 * scale))))
        companies = dict.fromkeys(fake.company() for _ in range(max(40, int(600 * scale))))
        self.cities = list(cities)
        self.companies = [(c, _company_domain(c, tld)) for c in companies]
        self.phones = [fake.phone_number() for _ in range(max(100, int(2000 * scale)))]
        self.domains = [d for d, _ in domains]
        self.domain_cum, self.domain_total = _cum(w for _, w in domains)
        self.language = locale[:2]


class _Codec:
    """Timestamps and JSON the way each writer wants them: text for COPY, Python objects
    for SQLAlchemy Core (the UTCDateTime and JSON types convert those)."""

    def __init__(self, copy: bool, now: int):
        self.copy = copy
        if copy:
            self.day0 = (now - 4 * YEAR) // DAY
            self.days = [
                date.fromordinal(date(1970, 1, 1).toordinal() + d).isoformat() + " "
                for d in range(self.day0, now // DAY + 30)
            ]
            self.tod = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(DAY)]

    def ts_function(self):
        if not self.copy:
            return lambda x: datetime.fromtimestamp(x, UTC)
        days, tod, day0 = self.days, self.tod, self.day0

        def ts(x: int) -> str:
            d, s = divmod(x, DAY)
            return days[d - day0] + tod[s]

        return ts

    def json(self, value: dict):
        return json.dumps(value, ensure_ascii=False) if self.copy else value

    @property
    def no_json(self):
        """SQL NULL for a JSON column (through Core, None would store JSON 'null')."""
        return None if self.copy else sa.null()


# --- writing ------------------------------------------------------------------------------

Batch = list[tuple[sa.Table, tuple[str, ...], list[tuple]]]


class _CopySink:
    """PostgreSQL + psycopg 3: ids from the sequence, rows by COPY from writer threads.

    Two writers, each with its own connection and one batch per transaction, keep both
    server cores busy while the main thread generates the next batch; a batch only
    references its own contacts and the shared vocabulary, so batches are independent.

    Foreign-key checks are most of PostgreSQL's work here (one locking look-up per
    reference, some 28 million for a million contacts), so where the role may, each
    batch's transaction sets `session_replication_role = replica`, which skips them.
    That is safe because every reference is known good: contact ids are the batch's
    own rows, and the rows of the shared vocabulary (account, tags, funnels, stages,
    groups, users, mailings) are locked FOR KEY SHARE first, exactly as the skipped
    checks would have locked them, so nothing can delete them under the batch. A
    role that may not set it (not a superuser, no GRANT SET) loads with the checks.
    """

    def __init__(self, engine: Engine, on_done, references: dict[str, list[int]], writers: int = 2):
        self.engine = engine
        self.on_done = on_done
        self.references = references
        self.skip_checks: bool | None = None  # unknown until tried
        self.ids_conn = engine.raw_connection()
        cur = self.ids_conn.cursor()
        cur.execute("SELECT pg_get_serial_sequence('contacts', 'id')")
        self.sequence = cur.fetchone()[0]
        self.ids_conn.commit()
        self.queue: queue.Queue = queue.Queue(maxsize=writers)
        self.error: BaseException | None = None
        self.abort = False
        self.threads = [
            threading.Thread(target=self._run, name=f"seed-writer-{i}", daemon=True)
            for i in range(writers)
        ]
        for thread in self.threads:
            thread.start()

    def allocate(self, n: int) -> list[int]:
        cur = self.ids_conn.cursor()
        cur.execute("SELECT nextval(%s) FROM generate_series(1, %s)", (self.sequence, n))
        ids = [row[0] for row in cur.fetchall()]
        self.ids_conn.commit()
        return ids

    def write(self, batch: Batch, contacts: int) -> None:
        while True:
            if self.error is not None:
                raise RuntimeError("seeding failed in a writer") from self.error
            try:
                self.queue.put((batch, contacts), timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        """Write batches until a None; after a failure (here or in the other writer),
        only take batches off the queue, so the producer never blocks."""
        raw = None
        try:
            raw = self.engine.raw_connection()
            cur = raw.cursor()
            while (item := self.queue.get()) is not None:
                if self.abort or self.error is not None:
                    continue
                batch, contacts = item
                self._begin(raw, cur)
                for table, columns, rows in batch:
                    if not rows:
                        continue
                    with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as cp:
                        write_row = cp.write_row
                        for row in rows:
                            write_row(row)
                raw.commit()
                self.on_done(contacts)
        except BaseException as exc:  # reported to the main thread
            if self.error is None:
                self.error = exc
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.rollback()
            while self.queue.get() is not None:
                pass
        finally:
            if raw is not None:
                raw.close()

    def _begin(self, raw, cur) -> None:
        if self.skip_checks is not False:
            import psycopg

            try:
                cur.execute("SET LOCAL session_replication_role = replica")
                self.skip_checks = True
            except psycopg.errors.InsufficientPrivilege:
                raw.rollback()
                self.skip_checks = False
        if self.skip_checks:
            for table, ids in self.references.items():
                cur.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE id = ANY(%s)"
                    " FOR KEY SHARE) AS locked",
                    (ids,),
                )
                if cur.fetchone()[0] != len(set(ids)):
                    raise RuntimeError(f"some {table} rows the seed uses were deleted")

    def close(self, abort: bool = False) -> None:
        self.abort = abort
        for _ in self.threads:  # each writer stops at its first None
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        self.ids_conn.close()
        if self.error is not None and not abort:
            raise RuntimeError("seeding failed in a writer") from self.error


class _CoreSink:
    """Any other database (SQLite): Core multi-row INSERTs, one transaction per batch."""

    def __init__(self, engine: Engine, on_done):
        self.engine = engine
        self.on_done = on_done
        self.conn = None
        self.tx = None

    def allocate(self, n: int) -> list[int]:
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()  # SQLite: BEGIN IMMEDIATE, so max(id) stays ours
        if is_postgres(self.conn):
            seq = self.conn.exec_driver_sql(
                "SELECT pg_get_serial_sequence('contacts', 'id')"
            ).scalar_one()
            return list(
                self.conn.execute(
                    sa.text("SELECT nextval(:s) FROM generate_series(1, :n)"), {"s": seq, "n": n}
                ).scalars()
            )
        top = self.conn.execute(sa.select(sa.func.max(t.contacts.c.id))).scalar() or 0
        return list(range(top + 1, top + 1 + n))

    def write(self, batch: Batch, contacts: int) -> None:
        conn = self.conn
        for table, columns, rows in batch:
            for i in range(0, len(rows), 2_000):
                conn.execute(
                    table.insert(),
                    [dict(zip(columns, r, strict=True)) for r in rows[i : i + 2_000]],
                )
        self.tx.commit()
        conn.close()
        self.conn = self.tx = None
        self.on_done(contacts)

    def close(self, abort: bool = False) -> None:
        if self.conn is not None:
            self.tx.rollback()
            self.conn.close()


# --- the fixed vocabulary: tags, funnels, users, groups, mailings ------------------------


def _ensure_named(conn, table, account_id: int, names, now) -> dict[str, int]:
    keys = {name_key(n): n for n in names}
    found = dict(
        conn.execute(
            sa.select(table.c.name_key, table.c.id).where(
                table.c.account_id == account_id, table.c.name_key.in_(list(keys))
            )
        ).all()
    )
    missing = [
        {"account_id": account_id, "name": n, "name_key": k, "created_at": now}
        for k, n in keys.items()
        if k not in found
    ]
    if missing:
        conn.execute(table.insert(), missing)
        return _ensure_named(conn, table, account_id, names, now)
    return found


def _ensure_stages(conn, account_id: int, funnel_id: int, names) -> list[int]:
    st = t.stages
    found = dict(
        conn.execute(sa.select(st.c.name_key, st.c.id).where(st.c.funnel_id == funnel_id)).all()
    )
    top = conn.execute(
        sa.select(sa.func.max(st.c.position)).where(st.c.funnel_id == funnel_id)
    ).scalar()
    position = -1 if top is None else top
    for name in names:
        if name_key(name) not in found:
            position += 1
            found[name_key(name)] = conn.execute(
                sa.insert(st)
                .values(
                    account_id=account_id,
                    funnel_id=funnel_id,
                    name=name,
                    name_key=name_key(name),
                    position=position,
                )
                .returning(st.c.id)
            ).scalar_one()
    return [found[name_key(n)] for n in names]


def _setup(engine: Engine, account_id: int, rng: random.Random, now: int, contacts: int):
    created = datetime.fromtimestamp(now, UTC)
    with engine.begin() as conn:
        if (
            conn.execute(sa.select(t.accounts.c.id).where(t.accounts.c.id == account_id)).first()
            is None
        ):
            raise ValueError(f"account {account_id} does not exist")
        tags = _ensure_named(conn, t.tags, account_id, TAGS, created)
        tag_ids = [tags[name_key(n)] for n in TAGS]
        funnels = _ensure_named(conn, t.funnels, account_id, [f[0] for f in FUNNELS], created)
        stage_ids = [
            (
                funnels[name_key(name)],
                _ensure_stages(conn, account_id, funnels[name_key(name)], stages),
                weights,
            )
            for name, stages, weights in FUNNELS
        ]
        groups = _ensure_named(conn, t.groups, account_id, GROUPS, created)
        group_ids = [groups[name_key(n)] for n in GROUPS]
        emails = [e for e, _ in USERS]
        users = dict(
            conn.execute(
                sa.select(t.users.c.email, t.users.c.id).where(
                    t.users.c.account_id == account_id, t.users.c.email.in_(emails)
                )
            ).all()
        )
        missing = [
            {"account_id": account_id, "email": e, "created_at": created}
            for e in emails
            if e not in users
        ]
        if missing:
            conn.execute(t.users.insert(), missing)
            users = dict(
                conn.execute(
                    sa.select(t.users.c.email, t.users.c.id).where(
                        t.users.c.account_id == account_id, t.users.c.email.in_(emails)
                    )
                ).all()
            )
        user_ids = [users[e] for e in emails]
        mailings = []
        if contacts > 0:
            # one in each of the last 12 calendar months, mid-morning UTC; a second run
            # sends the same (by name) mailings to its contacts too
            today = datetime.fromtimestamp(now, UTC)
            planned = []
            for back in range(12, 0, -1):
                year, month = divmod(today.year * 12 + today.month - 1 - back, 12)
                sent = int(datetime(year, month + 1, rng.randrange(3, 27), tzinfo=UTC).timestamp())
                sent += rng.randrange(7 * 3600, 11 * 3600)
                drafted = sent - rng.randrange(DAY, 7 * DAY)
                planned.append((f"{MAILINGS[month]} {year}", sent, drafted, rng.uniform(0.2, 0.6)))
            existing = {
                name: (mid, int(sent_at.timestamp()))
                for mid, name, sent_at in conn.execute(
                    sa.select(t.mailings.c.id, t.mailings.c.name, t.mailings.c.sent_at)
                    .where(
                        t.mailings.c.account_id == account_id,
                        t.mailings.c.name.in_([p[0] for p in planned]),
                    )
                    .order_by(t.mailings.c.id)
                )
            }
            for name, sent, drafted, share in planned:
                if name in existing:
                    mid, sent = existing[name]
                else:
                    mid = conn.execute(
                        sa.insert(t.mailings)
                        .values(
                            account_id=account_id,
                            name=name,
                            sent_at=datetime.fromtimestamp(sent, UTC),
                            created_at=datetime.fromtimestamp(drafted, UTC),
                        )
                        .returning(t.mailings.c.id)
                    ).scalar_one()
                mailings.append((mid, sent, share))
    return tag_ids, stage_ids, group_ids, user_ids, mailings


# --- generating ----------------------------------------------------------------------------

CONTACT_COLUMNS = (
    "id",
    "account_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "city",
    "country",
    "birth_date",
    "sex",
    "score",
    "state",
    "email_opt_in",
    "phone_opt_in",
    "email_valid",
    "deleted",
    "created_at",
    "updated_at",
)
TAG_COLUMNS = ("contact_id", "tag_id", "account_id", "added_at")
FUNNEL_COLUMNS = ("contact_id", "funnel_id", "stage_id", "account_id", "entered_at")
OWNER_COLUMNS = ("contact_id", "user_id", "account_id", "added_at")
GROUP_COLUMNS = ("group_id", "contact_id", "account_id", "added_at")
DETAIL_COLUMNS = ("contact_id", "name", "value", "account_id")
RECIPIENT_COLUMNS = (
    "mailing_id",
    "contact_id",
    "account_id",
    "sent_at",
    "opened_at",
    "clicked_at",
    "bounced",
)
EVENT_COLUMNS = ("account_id", "contact_id", "type", "occurred_at", "value", "products", "details")

COUNTED = (
    "contacts",
    "contact_tags",
    "contact_funnels",
    "contact_owners",
    "group_members",
    "contact_details",
    "mailing_recipients",
    "events",
)


class _Generator:
    def __init__(self, rng, account_id, total, now, codec, vocab, scale):
        self.rng, self.account_id, self.total, self.now = rng, account_id, total, now
        self.ts = codec.ts_function()
        self.tag_ids, self.funnels, self.group_ids, self.user_ids, mailings = vocab
        self.locales = [_Locale(spec, rng, scale) for spec in LOCALES]
        self.locale_cum, self.locale_total = _cum(spec[1] for spec in LOCALES)
        self.tag_cum, self.tag_total = _cum(1 / (k + 1) ** 1.15 for k in range(len(TAGS)))
        self.ntag_cum, self.ntag_total = _cum(TAGS_PER_CONTACT)
        self.user_cum, self.user_total = _cum(w for _, w in USERS)
        self.stage_cums = [(fid, ids, *_cum(w)) for fid, ids, w in self.funnels]
        self.mailings = [(mid, sent, self.ts(sent), p) for mid, sent, p in mailings]
        self.type_names = [n for n, _ in EVENT_TYPES]
        self.type_cum, self.type_total = _cum(w for _, w in EVENT_TYPES)
        self.plan_names = [n for n, _ in PLANS]
        self.plan_cum, self.plan_total = _cum(w for _, w in PLANS)
        # product lists ("running shoes, yoga mat") and event details, pre-built
        self.products = []
        for _ in range(3000):
            k = 1 if rng.random() < 0.6 else 2 if rng.random() < 0.75 else 3
            self.products.append(", ".join(rng.sample(PRODUCTS, k)))
        currencies = ("PLN", "EUR", "USD", "GBP")
        self.details = {
            "PURCHASE": [
                {"channel": c, "currency": cur, "payment": p}
                for c in ("web", "app", "store")
                for cur in currencies
                for p in ("card", "paypal", "blik", "transfer", "cash")
            ],
            "CART": [{"channel": c, "currency": cur} for c in ("web", "app") for cur in currencies],
            "VISIT": [
                {"page": p, "utm_source": s}
                for p in ("/", "/pricing", "/blog", "/product", "/contact", "/sale")
                for s in ("newsletter", "google", "facebook", "direct", "instagram")
            ]
            + [{"page": p} for p in ("/", "/pricing", "/checkout")],
            "CANCELLATION": [
                {"reason": r}
                for r in ("too expensive", "changed mind", "late delivery", "wrong size", "other")
            ],
            "OTHER": [
                {"kind": k}
                for k in ("support-ticket", "review", "newsletter-signup", "app-install", "call")
            ],
        }
        self.details = {k: [codec.json(d) for d in v] for k, v in self.details.items()}
        self.no_details = codec.no_json
        today = datetime.fromtimestamp(now, UTC).date()
        self.today_ord = today.toordinal()
        self.feb29 = [
            date(y, 2, 29)
            for y in range(today.year - 89, today.year - 16)
            if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        ]

    def batch(self, ids: list[int], first: int) -> tuple[Batch, dict[str, int]]:
        rng = self.rng
        rnd, expo, tri = rng.random, rng.expovariate, rng.triangular

        def pick(seq):  # random.choice without its exact-uniformity machinery
            return seq[int(rnd() * len(seq))]

        lognorm = rng.lognormvariate
        ts, now, total, acc = self.ts, self.now, self.total, self.account_id
        locales, locale_cum, locale_total = self.locales, self.locale_cum, self.locale_total
        tag_ids, tag_cum, tag_total = self.tag_ids, self.tag_cum, self.tag_total
        ntag_cum, ntag_total = self.ntag_cum, self.ntag_total
        user_ids, user_cum, user_total = self.user_ids, self.user_cum, self.user_total
        (
            (sales_id, sales_stages, sales_cum, sales_total),
            (onb_id, onb_stages, onb_cum, onb_total),
        ) = self.stage_cums
        won = sales_stages[4]
        blacklist, partners, webinar = self.group_ids
        mailings = self.mailings
        type_names, type_cum, type_total = self.type_names, self.type_cum, self.type_total
        products, details, no_details = self.products, self.details, self.no_details
        plan_names, plan_cum, plan_total = self.plan_names, self.plan_cum, self.plan_total
        today_ord, feb29 = self.today_ord, self.feb29
        span = 3 * YEAR
        two_years_ago = now - 2 * YEAR
        fromordinal = date.fromordinal

        contacts, ctags, cfunnels, owners, members = [], [], [], [], []
        cdetails, recipients, events = [], [], []
        for j, cid in enumerate(ids):
            loc = locales[bisect(locale_cum, rnd() * locale_total)]
            u = rnd()
            sex = "female" if u < 0.475 else "male" if u < 0.95 else "unknown"
            ns = 0 if sex == "female" else 1 if sex == "male" else int(rnd() < 0.5)
            first_name, f = pick(loc.first[ns])
            last_name, last = pick(loc.last[ns])
            if rnd() < (0.35 if sex == "unknown" else 0.03):
                first_name = None
                if rnd() < 0.25:
                    last_name = None
            company, company_domain = pick(loc.companies) if rnd() < 0.45 else (None, None)
            # the address: name-based, made unique by the contact id
            v = rnd()
            if first_name is None:
                local = f"{last}.{cid}" if last_name is not None else f"contact.{cid}"
            elif v < 0.30:
                local = f"{f}.{last}.{cid}"
            elif v < 0.45:
                local = f"{f}{last}{cid}"
            elif v < 0.60:
                local = f"{f[0]}{last}.{cid}"
            elif v < 0.72:
                local = f"{f}_{last}{cid}"
            elif v < 0.84:
                local = f"{last}.{f}.{cid}"
            else:
                local = f"{f}.{cid}"
            if company_domain is not None and rnd() < 0.4:
                domain = company_domain
            else:
                domain = loc.domains[bisect(loc.domain_cum, rnd() * loc.domain_total)]
            phone = pick(loc.phones) if rnd() < 0.7 else None
            if rnd() < 0.04:
                city = country = None
            else:
                city, country = pick(loc.cities), loc.country
            u = rnd()
            if u < 0.10:
                birth = None
            elif u < 0.104:
                birth = pick(feb29)
            else:
                birth = fromordinal(today_ord - int(tri(16.0, 90.0, 34.0) * 365.2425))
            u = rnd()
            state = (
                "PROSPECT"
                if u < 0.68
                else "CUSTOMER"
                if u < 0.90
                else "UNKNOWN"
                if u < 0.94
                else "PARTNER"
                if u < 0.97
                else "OTHER"
            )
            score = int(1000 * rnd() ** (1.6 if state == "CUSTOMER" else 3.0))
            email_opt_in = rnd() < 0.6
            phone_opt_in = phone is not None and rnd() < 0.43
            email_valid = rnd() < 0.97
            deleted = rnd() < 0.02
            # ids grow with created_at (as in a real database), more contacts lately
            p = (first + j + rnd()) / total
            created = max(now - span, now - 120 - int(span * (1 - p) ** 1.15) - int(rnd() * 7200))
            alive = now - created
            updated = created if rnd() < 0.3 else created + int(rnd() * alive)
            contacts.append(
                (
                    cid,
                    acc,
                    local + "@" + domain,
                    first_name,
                    last_name,
                    phone,
                    company,
                    city,
                    country,
                    birth,
                    sex,
                    score,
                    state,
                    email_opt_in,
                    phone_opt_in,
                    email_valid,
                    deleted,
                    ts(created),
                    ts(updated),
                )
            )

            k = bisect(ntag_cum, rnd() * ntag_total)
            if k:
                chosen = set()
                while len(chosen) < k:
                    chosen.add(bisect(tag_cum, rnd() * tag_total))
                for tag in chosen:
                    ctags.append((cid, tag_ids[tag], acc, ts(created + int(rnd() * alive))))
            if rnd() < 0.4:
                if state == "CUSTOMER" and rnd() < 0.7:
                    stage = won
                else:
                    stage = sales_stages[bisect(sales_cum, rnd() * sales_total)]
                cfunnels.append((cid, sales_id, stage, acc, ts(created + int(rnd() * alive))))
            if rnd() < 0.2:
                stage = onb_stages[bisect(onb_cum, rnd() * onb_total)]
                cfunnels.append((cid, onb_id, stage, acc, ts(created + int(rnd() * alive))))
            if rnd() < 0.3:
                a = user_ids[bisect(user_cum, rnd() * user_total)]
                owners.append((cid, a, acc, ts(created + int(rnd() * alive))))
                if rnd() < 0.2:
                    b = user_ids[bisect(user_cum, rnd() * user_total)]
                    if b != a:
                        owners.append((cid, b, acc, ts(created + int(rnd() * alive))))
            if rnd() < (0.15 if not email_valid else 0.01):
                members.append((blacklist, cid, acc, ts(created + int(rnd() * alive))))
            if rnd() < (0.8 if state == "PARTNER" else 0.005):
                members.append((partners, cid, acc, ts(created + int(rnd() * alive))))
            if rnd() < 0.07:
                members.append((webinar, cid, acc, ts(created + int(rnd() * alive))))

            if rnd() < 0.5:
                if rnd() < 0.85:
                    plan = plan_names[bisect(plan_cum, rnd() * plan_total)]
                    cdetails.append((cid, "plan", plan, acc))
                if rnd() < 0.6:
                    points = pick(ODD_NUMBERS) if rnd() < 0.02 else str(int(expo(1 / 800)))
                    cdetails.append((cid, "loyalty_points", points, acc))
                if rnd() < 0.5:
                    if rnd() < 0.02:
                        last_order = pick(ODD_DATES)
                    else:
                        last_order = fromordinal(today_ord - int(rnd() ** 2 * 700)).isoformat()
                    cdetails.append((cid, "last_order_date", last_order, acc))
                if rnd() < 0.7:
                    cdetails.append((cid, "source", pick(SOURCES), acc))
                if rnd() < 0.25:
                    cdetails.append((cid, "lifetime_value", f"{lognorm(5.0, 1.0):.2f}", acc))
                if rnd() < 0.2:
                    cdetails.append((cid, "preferred_language", loc.language, acc))

            for mid, sent, sent_v, share in mailings:
                if sent > created and rnd() < share:
                    if rnd() < (0.01 if email_valid else 0.35):
                        recipients.append((mid, cid, acc, sent_v, None, None, True))
                    elif rnd() < 0.255:
                        opened = min(now, sent + 60 + int(expo(1 / 21600)))
                        clicked = (
                            ts(min(now, opened + 5 + int(expo(1 / 240)))) if rnd() < 0.2 else None
                        )
                        recipients.append((mid, cid, acc, sent_v, ts(opened), clicked, False))
                    else:
                        recipients.append((mid, cid, acc, sent_v, None, None, False))

            # older contacts have had more time to act: ~3 events on average
            lo = max(created, two_years_ago)
            window = now - lo
            n_events = int(expo(1 / (0.8 + 4.4 * window / (2 * YEAR))))
            if n_events:
                for _ in range(min(n_events, 60)):
                    kind = type_names[bisect(type_cum, rnd() * type_total)]
                    if rnd() < 0.01:  # a recent burst: "in the last 30 days" finds some
                        occurred = now - int(rnd() * min(window, 30 * DAY))
                    else:
                        occurred = lo + int(rnd() * window)
                    if kind == "VISIT" or kind == "OTHER":
                        value = None
                        items = None
                    else:
                        value = (
                            round(lognorm(4.0, 0.9), 2)
                            if kind != "CANCELLATION" or rnd() < 0.7
                            else None
                        )
                        items = pick(products) if rnd() < 0.92 else None
                    extra = pick(details[kind]) if rnd() < 0.6 else no_details
                    events.append((acc, cid, kind, ts(occurred), value, items, extra))

        # in time order: the (account, type, occurred_at) index is then filled in
        # a few ascending runs instead of at random places
        events.sort(key=itemgetter(3))
        batch = [
            (t.contacts, CONTACT_COLUMNS, contacts),
            (t.contact_tags, TAG_COLUMNS, ctags),
            (t.contact_funnels, FUNNEL_COLUMNS, cfunnels),
            (t.contact_owners, OWNER_COLUMNS, owners),
            (t.group_members, GROUP_COLUMNS, members),
            (t.contact_details, DETAIL_COLUMNS, cdetails),
            (t.mailing_recipients, RECIPIENT_COLUMNS, recipients),
            (t.events, EVENT_COLUMNS, events),
        ]
        return batch, {name: len(rows) for name, (_, _, rows) in zip(COUNTED, batch, strict=True)}


def _uses_copy(engine: Engine) -> bool:
    return is_postgres(engine) and engine.dialect.driver == "psycopg"


def seed(
    engine: Engine,
    account_id: int,
    contacts: int,
    *,
    progress: bool = True,
    seed: int | None = None,
) -> dict:
    """Add `contacts` realistic contacts (and their tags, funnel stages, owners, groups,
    details, mailings and events) to account `account_id`; return row counts."""
    rng = random.Random(seed)
    now = int(time.time())
    copy = _uses_copy(engine)
    vocab = _setup(engine, account_id, rng, now, contacts)
    tag_ids, _, group_ids, user_ids, mailings = vocab
    counts = {
        "contacts": 0,
        "tags": len(tag_ids),
        "contact_tags": 0,
        "funnels": len(FUNNELS),
        "contact_funnels": 0,
        "users": len(user_ids),
        "contact_owners": 0,
        "groups": len(group_ids),
        "group_members": 0,
        "contact_details": 0,
        "mailings": len(mailings),
        "mailing_recipients": 0,
        "events": 0,
    }
    if contacts <= 0:
        return counts

    bar = None
    if progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]seeding contacts"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        task = bar.add_task("seed", total=contacts)

    def on_done(n: int) -> None:  # called once a batch is committed
        if bar is not None:
            bar.advance(task, n)

    scale = min(1.0, max(0.05, contacts / 100_000))  # smaller pools for small runs
    generator = _Generator(rng, account_id, contacts, now, _Codec(copy, now), vocab, scale)
    if copy:
        tag_ids, funnels, group_ids, user_ids, mailings = vocab
        references = {
            "accounts": [account_id],
            "tags": tag_ids,
            "funnels": [funnel_id for funnel_id, _, _ in funnels],
            "stages": [stage for _, stages, _ in funnels for stage in stages],
            "groups": group_ids,
            "users": user_ids,
            "mailings": [mailing_id for mailing_id, _, _ in mailings],
        }
        sink = _CopySink(engine, on_done, references)
    else:
        sink = _CoreSink(engine, on_done)
    size = BATCH_POSTGRES if copy else BATCH_SQLITE
    finished = False
    if bar is not None:
        bar.start()
    try:
        for first in range(0, contacts, size):
            n = min(size, contacts - first)
            ids = sink.allocate(n)
            batch, batch_counts = generator.batch(ids, first)
            sink.write(batch, n)
            for name, value in batch_counts.items():
                counts[name] += value
        finished = True
    finally:
        try:
            sink.close(abort=not finished)
        finally:
            if bar is not None:
                bar.stop()
    return counts
