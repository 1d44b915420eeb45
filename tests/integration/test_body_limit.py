"""The default body limit: a few MiB, enough for a dense 10,000-contact batch, refused
before it is read beyond that (the outside run's 23 MB of 10,000 contacts × 300 tags)."""

import json

from app.config import Settings

DEFAULT = Settings.model_fields["max_body_bytes"].default


def dense(i: int) -> dict:
    """A contact with every field filled, five tags, five details, an owner, a funnel
    stage and a group: more than real batches carry."""
    return {
        "email": f"katarzyna.wisniewska-{i}@example-company.com",
        "first_name": "Katarzyna",
        "last_name": "Wiśniewska-Kowalczyk",
        "phone": "+48 601 234 567",
        "company": "Przedsiębiorstwo Handlowe Example Sp. z o.o.",
        "city": "Łódź",
        "country": "PL",
        "birth_date": "1987-04-12",
        "sex": "female",
        "score": 1234,
        "state": "CUSTOMER",
        "email_opt_in": True,
        "phone_opt_in": False,
        "email_valid": True,
        "created_at": "2024-03-05T10:11:12Z",
        "tags": ["newsletter", "vip-2026", "black-friday-2025", "webinar", "loyalty-gold"],
        "details": {
            "plan": "pro-annual",
            "last_order_id": "ORD-2026-0012345",
            "favourite_category": "garden furniture",
            "loyalty_points": "12345",
            "source": "facebook-lead-ads",
        },
        "owners": ["sales.rep@example-company.com"],
        "funnels": {"Sales": "Negotiation"},
        "groups": ["Warsaw webinar 2026"],
    }


def test_the_default_is_a_few_mib():
    assert 4 * 2**20 <= DEFAULT <= 16 * 2**20


def test_a_dense_ten_thousand_contact_batch_fits(client):
    """Read whole and validated (one bad row at the end: a 422 that names it, not a 413)."""
    batch = [dense(i) for i in range(10_000)]
    batch[-1]["birth_date"] = "1990-02-30"
    body = json.dumps({"contacts": batch}).encode()
    assert len(body) < DEFAULT
    r = client.post("/v1/contacts", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == "contacts[9999].birth_date"


def test_ten_thousand_contacts_with_300_tags_each_are_413(client):
    tags = [f"tag-number-{n}" for n in range(300)]
    batch = [{"email": f"c{i}@example.com", "tags": tags} for i in range(10_000)]
    body = json.dumps({"contacts": batch}).encode()
    r = client.post("/v1/contacts", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert client.count({}) == 0
