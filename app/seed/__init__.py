"""Realistic demo data, fast enough for a million contacts (`audience seed`, and the demo
account at `audience serve`).

`seed(engine, account_id, n)` adds n contacts to an existing account, with tags, funnel
stages, owners, groups, details, mailings (with opens, clicks and bounces) and events:

* vocabulary.py — the words drawn from, and how often;
* catalog.py — the account's tags, funnels, groups, users and mailings, found or created;
* generator.py — the rows, batch by batch, in pure Python;
* writers.py — each batch into the database: COPY on PostgreSQL, INSERT … SELECT elsewhere.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from app import events_partitions
from app.db import refresh_statistics
from app.seed.catalog import Catalog, plan_mailings, store_catalog
from app.seed.generator import EVENT_HISTORY, Generator
from app.seed.writers import OnDone, open_writer


def seed(
    engine: Engine,
    account_id: int,
    contacts: int,
    *,
    progress: bool = True,
    seed: int | None = None,
) -> dict[str, int]:
    """Add `contacts` realistic contacts (and their tags, funnel stages, owners, groups,
    details, mailings and events) to account `account_id`; return row counts."""
    rng = random.Random(seed)
    now = int(time.time())
    catalog = store_catalog(engine, account_id, plan_mailings(rng, now) if contacts > 0 else [])
    counts = _catalog_counts(catalog)
    if contacts <= 0:
        return counts
    # PostgreSQL: the months the events span get their partitions first, so that each row
    # goes straight to its month, not to the default partition to be moved later
    events_partitions.maintain(engine, since=datetime.fromtimestamp(now - EVENT_HISTORY, UTC))
    with (
        _progress_bar(contacts, progress) as on_done,
        open_writer(engine, account_id, catalog, now, on_done) as writer,
    ):
        generator = Generator(rng, account_id, contacts, now, writer.codec, catalog)
        for first in range(0, contacts, writer.batch_size):
            n = min(writer.batch_size, contacts - first)
            batch = generator.batch(writer.allocate(n), first)
            writer.write(batch, n)
            for table, rows in batch.items():
                counts[table.name] += len(rows)
    with engine.begin() as conn:
        refresh_statistics(conn)
    return counts


def _catalog_counts(catalog: Catalog) -> dict[str, int]:
    """The counts `seed` returns, before any contact: the catalog's."""
    return {
        "contacts": 0,
        "tags": len(catalog.tags),
        "contact_tags": 0,
        "funnels": len(catalog.funnels),
        "contact_funnels": 0,
        "users": len(catalog.users),
        "contact_owners": 0,
        "groups": len(catalog.groups),
        "group_members": 0,
        "contact_details": 0,
        "mailings": len(catalog.mailings),
        "mailing_recipients": 0,
        "events": 0,
    }


@contextmanager
def _progress_bar(contacts: int, shown: bool) -> Iterator[OnDone]:
    """A bar that counts committed contacts, or nothing."""
    if not shown:
        yield lambda n: None
        return
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
    with bar:
        yield lambda n: bar.advance(task, n)
