"""Many contacts fast, straight in SQL (PostgreSQL only): for plan and fault tests."""

import uuid

import sqlalchemy as sa

from app.auth import create_account


def bulk_account(engine, n: int, *, with_key: bool = False):
    with engine.begin() as conn:
        account_id, key = create_account(conn, f"bulk-{uuid.uuid4().hex[:6]}")
        p = {"a": account_id, "n": n}
        conn.execute(
            sa.text(
                "INSERT INTO contacts (account_id, email, first_name, score, created_at, updated_at)"
                " SELECT :a, 'c' || g || '@bulk.example', 'Name' || (g % 100), g % 1000, now(), now()"
                " FROM generate_series(1, :n) g"
            ),
            p,
        )
        conn.execute(
            sa.text(
                "INSERT INTO tags (account_id, name, name_key, created_at)"
                " SELECT :a, 't' || g, 't' || g, now() FROM generate_series(1, 50) g"
            ),
            p,
        )
        conn.execute(
            sa.text(
                "INSERT INTO contact_tags (contact_id, tag_id, account_id, added_at)"
                " SELECT c.id, t.id, :a, now() FROM contacts c JOIN tags t"
                " ON t.account_id = :a AND t.name_key = 't' || (1 + c.id % 50)"
                " WHERE c.account_id = :a"
            ),
            p,
        )
        funnel = conn.execute(
            sa.text(
                "INSERT INTO funnels (account_id, name, name_key, created_at)"
                " VALUES (:a, 'Sales', 'sales', now()) RETURNING id"
            ),
            p,
        ).scalar_one()
        for i, stage in enumerate(["Lead", "Offer", "Won"]):
            conn.execute(
                sa.text(
                    "INSERT INTO stages (account_id, funnel_id, name, name_key, position)"
                    " VALUES (:a, :f, :s, :k, :i)"
                ),
                {**p, "f": funnel, "s": stage, "k": stage.lower(), "i": i},
            )
        conn.execute(
            sa.text(
                "INSERT INTO contact_funnels (contact_id, funnel_id, stage_id, account_id, entered_at)"
                " SELECT c.id, :f, (SELECT id FROM stages WHERE funnel_id = :f"
                "  ORDER BY position LIMIT 1 OFFSET (c.id % 3)), :a, now()"
                " FROM contacts c WHERE c.account_id = :a AND c.id % 4 = 0"
            ),
            {**p, "f": funnel},
        )
        conn.execute(
            sa.text(
                "INSERT INTO events (account_id, contact_id, type, occurred_at, value)"
                " SELECT :a, c.id, (ARRAY['PURCHASE','VISIT','CART'])[1 + (c.id + g) % 3],"
                "  now() - ((c.id * 7 + g * 13) % 700) * interval '1 day', (c.id % 200)::float"
                " FROM contacts c, generate_series(1, 3) g WHERE c.account_id = :a"
            ),
            p,
        )
    return (account_id, key) if with_key else account_id
