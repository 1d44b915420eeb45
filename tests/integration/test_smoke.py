def test_load_count_job(client):
    assert (
        client.load(
            {"email": "A@x.com", "first_name": "Anna", "tags": ["VIP"]},
            {"email": "b@x.com", "city": "ŁÓDŹ"},
        ).items()
        >= {"created": 2, "updated": 0}.items()
    )
    assert client.count({}) == 2
    assert client.count({"include": [{"type": "tag", "tags": ["vip"]}]}) == 1
    assert client.count({"filter": {"field": "city", "op": "eq", "value": "łódź"}}) == 1
    job = client.run(
        {"include": [{"type": "tag", "tags": ["vip"]}]},
        [{"type": "add_tags", "tags": ["x"]}, {"type": "set_score", "mode": "add", "value": 2}],
    )
    assert job["status"] == "succeeded", job
    assert job["actions"] == [
        {"type": "add_tags", "tags": ["x"], "affected": 1},
        {"type": "set_score", "mode": "add", "value": 2, "affected": 1},
    ]
