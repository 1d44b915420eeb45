"""Contacts and the rows hanging off them, in batches: pure Python, no database.

Faker is called only to fill small pools (names per locale and sex, cities, companies,
phone numbers); every row then samples those pools with `random`, which keeps a million
contacts affordable. One `random.Random` drives every draw, so a seed and a clock fix the
data. A contact's e-mail address embeds its id, so addresses are unique in the account and
a second run into the same account never collides with the first.
"""

from __future__ import annotations

import random
import re
import unicodedata
from bisect import bisect
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from itertools import accumulate
from operator import itemgetter
from typing import Any, Protocol

import sqlalchemy as sa

from app import tables as t
from app.contacts.service import NEW_CONTACT
from app.seed.catalog import Catalog
from app.seed.vocabulary import (
    DAY,
    EVENT_DETAILS,
    EVENT_TYPES,
    FUNNELS,
    LEGAL_FORMS,
    LOCALES,
    ODD_DATES,
    ODD_NUMBERS,
    PLANS,
    PRODUCTS,
    SEXES,
    SOURCES,
    STATES,
    TAGS,
    TAGS_PER_CONTACT,
    TRANSLITERATION,
    USERS,
    YEAR,
    LocaleSpec,
)

# How far back a contact's events go.
EVENT_HISTORY = 2 * YEAR
# What a batch fills, in the order it is written (contacts first: the rest refer to them).
TABLES = (
    t.contacts,
    t.contact_tags,
    t.contact_funnels,
    t.contact_owners,
    t.group_members,
    t.contact_details,
    t.mailing_recipients,
    t.events,
)


def _columns(table: sa.Table) -> tuple[str, ...]:
    """A row's columns, in its table's order: all of them but an event's id, which the
    database assigns (a contact's is taken up front, for its other rows to refer to)."""
    return tuple(c.name for c in table.c if not (table is t.events and c.name == "id"))


COLUMNS = {table: _columns(table) for table in TABLES}
# Rows by table, as tuples in COLUMNS order.
Batch = dict[sa.Table, list[tuple]]

_contact_row = itemgetter(*COLUMNS[t.contacts])
_occurred_at = itemgetter(COLUMNS[t.events].index("occurred_at"))


class Codec(Protocol):
    """How the writer wants timestamps (Unix seconds here) and JSON spelled."""

    ts: Callable[[int], Any]
    json: Callable[[dict], Any]
    no_json: Any


def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.translate(TRANSLITERATION))
    return "".join(ch for ch in text if ch.isascii())


def _slug(text: str) -> str:
    return "".join(ch for ch in _ascii(text).lower() if ch.isalnum())


def _company_domain(company: str, tld: str) -> str | None:
    words = [w for w in re.findall(r"[a-z0-9]+", _ascii(company).lower()) if w not in LEGAL_FORMS]
    return "-".join(words[:2]) + "." + tld if words else None


Draw = Callable[[], Any]


def _weighted(items: Iterable, weights: Iterable[float], rnd: Callable[[], float]) -> Draw:
    """A draw of one item by relative weight: a bisection of the cumulative weights,
    cheaper than random.choices for one item (a closure: cheaper than a method)."""
    items, cumulative = list(items), list(accumulate(weights))
    total = cumulative[-1]
    return lambda: items[bisect(cumulative, rnd() * total)]


def _weighted_pairs(pairs: Sequence[tuple[Any, float]], rnd: Callable[[], float]) -> Draw:
    return _weighted([item for item, _ in pairs], [weight for _, weight in pairs], rnd)


def _picker(rnd: Callable[[], float]) -> Callable[[Sequence], Any]:
    """random.choice without its exactness machinery."""
    return lambda seq: seq[int(rnd() * len(seq))]


def _names(make: Callable[[], str], size: int) -> list[tuple[str, str]]:
    """Up to `size` distinct names, each with its slug for e-mail addresses."""
    out: dict[str, str] = {}
    for _ in range(size):
        name = make()
        slug = _slug(name)
        if slug:
            out.setdefault(name, slug)
    return list(out.items())


class _Locale:
    """Pools for one locale: (name, e-mail slug) per sex, cities, companies, phones."""

    def __init__(self, spec: LocaleSpec, rng: random.Random, scale: float):
        from faker import Faker

        fake = Faker(spec.locale)
        fake.seed_instance(rng.randrange(2**32))
        for provider in fake.get_providers():
            # Faker builds it_IT's city list from a set: order it, or runs with one seed
            # would still differ (with PYTHONHASHSEED)
            if isinstance(getattr(provider, "cities", None), list):
                provider.cities = sorted(provider.cities)
        n_first, n_last = max(80, int(1500 * scale)), max(120, int(2500 * scale))
        self.first = (
            _names(fake.first_name_female, n_first),
            _names(fake.first_name_male, n_first),
        )
        self.last = (_names(fake.last_name_female, n_last), _names(fake.last_name_male, n_last))
        # dict.fromkeys, not a set: a set's order changes with PYTHONHASHSEED
        cities = dict.fromkeys(fake.city() for _ in range(max(40, int(800 * scale))))
        companies = dict.fromkeys(fake.company() for _ in range(max(40, int(600 * scale))))
        self.cities = list(cities)
        self.companies = [(c, _company_domain(c, spec.tld)) for c in companies]
        self.phones = [fake.phone_number() for _ in range(max(100, int(2000 * scale)))]
        self.draw_mail_domain = _weighted_pairs(spec.mail_domains, rng.random)
        self.country = spec.country
        self.language = spec.locale[:2]


def _product_lists(rng: random.Random) -> list[str]:
    """What an order holds ("running shoes, yoga mat"): mostly one product."""
    lists = []
    for _ in range(3000):
        k = 1 if rng.random() < 0.6 else 2 if rng.random() < 0.75 else 3
        lists.append(", ".join(rng.sample(PRODUCTS, k)))
    return lists


def _leap_days(today: date) -> list[date]:
    """29 Februaries a living adult may be born on."""
    years = range(today.year - 89, today.year - 16)
    return [date(y, 2, 29) for y in years if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)]


class Generator:
    """The rows of `total` contacts of one account, batch by batch. Draws are closures
    and hot values locals: a million contacts make some 80 million draws."""

    def __init__(
        self,
        rng: random.Random,
        account_id: int,
        total: int,
        now: int,
        codec: Codec,
        catalog: Catalog,
    ):
        rnd = self.rnd = rng.random
        self.pick = _picker(rnd)
        self.expo, self.lognorm = rng.expovariate, rng.lognormvariate
        self.triangular = rng.triangular
        self.account_id, self.total, self.now, self.ts = account_id, total, now, codec.ts
        scale = min(1.0, max(0.05, total / 100_000))  # smaller pools for small runs
        locales = [_Locale(spec, rng, scale) for spec in LOCALES]
        self.draw_locale = _weighted(locales, [spec.weight for spec in LOCALES], rnd)
        self.draw_sex, self.draw_state = _weighted_pairs(SEXES, rnd), _weighted_pairs(STATES, rnd)
        self.tag_ids = catalog.tags
        zipf = [1 / (k + 1) ** 1.15 for k in range(len(TAGS))]
        self.draw_tag = _weighted(range(len(TAGS)), zipf, rnd)  # an index into tag_ids
        self.draw_tag_count = _weighted(range(len(TAGS_PER_CONTACT)), TAGS_PER_CONTACT, rnd)
        self.draw_owner = _weighted(catalog.users, [weight for _, weight in USERS], rnd)
        (self.sales, sales_stages), (self.onboarding, onboarding_stages) = catalog.funnels
        self.won = sales_stages[FUNNELS[0][1].index("Won")]
        self.draw_sales_stage = _weighted(sales_stages, FUNNELS[0][2], rnd)
        self.draw_onboarding_stage = _weighted(onboarding_stages, FUNNELS[1][2], rnd)
        self.blacklist, self.partners, self.webinar = catalog.groups
        self.mailings = [(m.id, m.sent, self.ts(m.sent), m.share) for m in catalog.mailings]
        self.draw_event_type = _weighted_pairs(EVENT_TYPES, rnd)
        self.draw_plan = _weighted_pairs(PLANS, rnd)
        self.products = _product_lists(rng)
        self.event_details = {k: [codec.json(d) for d in v] for k, v in EVENT_DETAILS.items()}
        self.no_details = codec.no_json
        today = datetime.fromtimestamp(now, UTC).date()
        self.today, self.leap_days = today.toordinal(), _leap_days(today)

    def batch(self, ids: list[int], first: int) -> Batch:
        """The rows of the contacts `ids`, the run's `first`-th contact onwards."""
        batch: Batch = {table: [] for table in TABLES}
        for position, cid in enumerate(ids, first):
            self._add_contact(cid, position, batch)
        # in time order: the (account, type, occurred_at) index is then filled in
        # a few ascending runs instead of at random places
        batch[t.events].sort(key=_occurred_at)
        return batch

    def _add_contact(self, cid: int, position: int, batch: Batch) -> None:
        locale = self.draw_locale()
        contact, created = self._contact(cid, position, locale)
        batch[t.contacts].append(_contact_row(contact))
        alive = self.now - created
        self._tags(cid, created, alive, batch[t.contact_tags])
        self._funnels(cid, contact["state"], created, alive, batch[t.contact_funnels])
        self._owners(cid, created, alive, batch[t.contact_owners])
        self._groups(cid, contact, created, alive, batch[t.group_members])
        if self.rnd() < 0.5:
            self._details(cid, locale, batch[t.contact_details])
        self._recipients(cid, created, contact["email_valid"], batch[t.mailing_recipients])
        self._events(cid, created, batch[t.events])

    def _contact(self, cid: int, position: int, locale: _Locale) -> tuple[dict, int]:
        """The contact's columns, and when it was created."""
        rnd, pick = self.rnd, self.pick
        sex, first_name, last_name, first_slug, last_slug = self._name(locale)
        company, company_domain = pick(locale.companies) if rnd() < 0.45 else (None, None)
        email = self._email(cid, locale, first_slug, last_slug, company_domain)
        phone = pick(locale.phones) if rnd() < 0.7 else None
        city, country = (None, None) if rnd() < 0.04 else (pick(locale.cities), locale.country)
        birth_date = self._birth_date()
        state = self.draw_state()
        score = int(1000 * rnd() ** (1.6 if state == "CUSTOMER" else 3.0))
        email_opt_in = rnd() < 0.6
        phone_opt_in = phone is not None and rnd() < 0.43
        email_valid = rnd() < 0.97
        deleted = rnd() < 0.02
        created, updated = self._lifetime(position)
        # the app's defaults first: a column the seed does not draw gets a new contact's
        contact = {
            **NEW_CONTACT,
            "id": cid,
            "account_id": self.account_id,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "phone": phone,
            "company": company,
            "city": city,
            "country": country,
            "birth_date": birth_date,
            "sex": sex,
            "score": score,
            "state": state,
            "email_opt_in": email_opt_in,
            "phone_opt_in": phone_opt_in,
            "email_valid": email_valid,
            "deleted": deleted,
            "created_at": self.ts(created),
            "updated_at": self.ts(updated),
        }
        return contact, created

    def _name(self, locale: _Locale) -> tuple[str, str | None, str | None, str | None, str | None]:
        """Sex, first and last name, and their slugs (None where the name is not known)."""
        rnd, pick = self.rnd, self.pick
        sex = self.draw_sex()
        pool = 0 if sex == "female" else 1 if sex == "male" else int(rnd() < 0.5)
        first_name, first_slug = pick(locale.first[pool])
        last_name, last_slug = pick(locale.last[pool])
        if rnd() < (0.35 if sex == "unknown" else 0.03):
            first_name = first_slug = None
            if rnd() < 0.25:
                last_name = last_slug = None
        return sex, first_name, last_name, first_slug, last_slug

    def _email(
        self, cid: int, locale: _Locale, f: str | None, last: str | None, company: str | None
    ) -> str:
        """Name-based, made unique by the contact id; at a free mail provider or at work."""
        rnd = self.rnd
        v = rnd()
        if f is None:
            local = f"{last}.{cid}" if last is not None else f"contact.{cid}"
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
        if company is not None and rnd() < 0.4:
            return local + "@" + company
        return local + "@" + locale.draw_mail_domain()

    def _birth_date(self) -> date | None:
        u = self.rnd()
        if u < 0.10:
            return None
        if u < 0.104:
            return self.pick(self.leap_days)
        return date.fromordinal(self.today - int(self.triangular(16.0, 90.0, 34.0) * 365.2425))

    def _lifetime(self, position: int) -> tuple[int, int]:
        """When the contact was created and last updated. Ids grow with created_at (as in a
        real database), with more contacts lately."""
        rnd, now, span = self.rnd, self.now, 3 * YEAR
        p = (position + rnd()) / self.total
        created = max(now - span, now - 120 - int(span * (1 - p) ** 1.15) - int(rnd() * 7200))
        updated = created if rnd() < 0.3 else created + int(rnd() * (now - created))
        return created, updated

    # Below, a row's date is a moment of the contact's life so far:
    # ts(created + int(rnd() * alive)).

    def _tags(self, cid: int, created: int, alive: int, out: list[tuple]) -> None:
        k = self.draw_tag_count()
        if k:
            draw_tag, chosen = self.draw_tag, set()
            while len(chosen) < k:
                chosen.add(draw_tag())
            rnd, ts, tag_ids, account_id = self.rnd, self.ts, self.tag_ids, self.account_id
            for tag in chosen:
                out.append((cid, tag_ids[tag], account_id, ts(created + int(rnd() * alive))))

    def _funnels(self, cid: int, state: str, created: int, alive: int, out: list[tuple]) -> None:
        rnd, ts, account_id = self.rnd, self.ts, self.account_id
        if rnd() < 0.4:
            won = state == "CUSTOMER" and rnd() < 0.7
            stage = self.won if won else self.draw_sales_stage()
            out.append((cid, self.sales, stage, account_id, ts(created + int(rnd() * alive))))
        if rnd() < 0.2:
            stage = self.draw_onboarding_stage()
            out.append((cid, self.onboarding, stage, account_id, ts(created + int(rnd() * alive))))

    def _owners(self, cid: int, created: int, alive: int, out: list[tuple]) -> None:
        rnd, ts, account_id = self.rnd, self.ts, self.account_id
        if rnd() < 0.3:
            a = self.draw_owner()
            out.append((cid, a, account_id, ts(created + int(rnd() * alive))))
            if rnd() < 0.2:
                b = self.draw_owner()
                if b != a:
                    out.append((cid, b, account_id, ts(created + int(rnd() * alive))))

    def _groups(self, cid: int, contact: dict, created: int, alive: int, out: list[tuple]) -> None:
        rnd, ts, account_id = self.rnd, self.ts, self.account_id
        shares = (
            (self.blacklist, 0.01 if contact["email_valid"] else 0.15),
            (self.partners, 0.8 if contact["state"] == "PARTNER" else 0.005),
            (self.webinar, 0.07),
        )
        for group, share in shares:
            if rnd() < share:
                out.append((group, cid, account_id, ts(created + int(rnd() * alive))))

    def _details(self, cid: int, locale: _Locale, out: list[tuple]) -> None:
        rnd, pick, account_id = self.rnd, self.pick, self.account_id
        if rnd() < 0.85:
            out.append((cid, "plan", self.draw_plan(), account_id))
        if rnd() < 0.6:
            points = pick(ODD_NUMBERS) if rnd() < 0.02 else str(int(self.expo(1 / 800)))
            out.append((cid, "loyalty_points", points, account_id))
        if rnd() < 0.5:
            if rnd() < 0.02:
                last_order = pick(ODD_DATES)
            else:
                last_order = date.fromordinal(self.today - int(rnd() ** 2 * 700)).isoformat()
            out.append((cid, "last_order_date", last_order, account_id))
        if rnd() < 0.7:
            out.append((cid, "source", pick(SOURCES), account_id))
        if rnd() < 0.25:
            out.append((cid, "lifetime_value", f"{self.lognorm(5.0, 1.0):.2f}", account_id))
        if rnd() < 0.2:
            out.append((cid, "preferred_language", locale.language, account_id))

    def _recipients(self, cid: int, created: int, email_valid: bool, out: list[tuple]) -> None:
        """The mailings sent since the contact was created, some opened, clicked or bounced."""
        rnd, expo, ts, now, account_id = self.rnd, self.expo, self.ts, self.now, self.account_id
        for mailing, sent, sent_at, share in self.mailings:
            if sent > created and rnd() < share:
                if rnd() < (0.01 if email_valid else 0.35):
                    out.append((mailing, cid, account_id, sent_at, None, None, True))
                elif rnd() < 0.255:
                    opened = min(now, sent + 60 + int(expo(1 / 21600)))
                    clicked = ts(min(now, opened + 5 + int(expo(1 / 240)))) if rnd() < 0.2 else None
                    out.append((mailing, cid, account_id, sent_at, ts(opened), clicked, False))
                else:
                    out.append((mailing, cid, account_id, sent_at, None, None, False))

    def _events(self, cid: int, created: int, out: list[tuple]) -> None:
        """Over the last two years: older contacts have had more time to act (~3 events on
        average)."""
        rnd, pick, ts, now, account_id = self.rnd, self.pick, self.ts, self.now, self.account_id
        since = max(created, now - EVENT_HISTORY)
        window = now - since
        for _ in range(min(int(self.expo(1 / (0.8 + 4.4 * window / EVENT_HISTORY))), 60)):
            kind = self.draw_event_type()
            if rnd() < 0.01:  # a recent burst: "in the last 30 days" finds some
                occurred = now - int(rnd() * min(window, 30 * DAY))
            else:
                occurred = since + int(rnd() * window)
            value = products = None
            if kind != "VISIT" and kind != "OTHER":
                if kind != "CANCELLATION" or rnd() < 0.7:
                    value = round(self.lognorm(4.0, 0.9), 2)
                products = pick(self.products) if rnd() < 0.92 else None
            details = pick(self.event_details[kind]) if rnd() < 0.6 else self.no_details
            out.append((account_id, cid, kind, ts(occurred), value, products, details))
