"""GET /metrics: Prometheus text without a key; requests by route template (never a raw
path), count and preview durations, jobs by kind and status, chunks, rows applied, queue
depth, webhook deliveries; nothing of an account in any label."""

import re

from prometheus_client.parser import text_string_to_metric_families


def scrape(api) -> dict[str, list]:
    r = api.get("/metrics")  # no Authorization header
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples, name: str, **labels) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics(api, client):
    before = scrape(api)
    client.load({"email": "secret.person@example.com"}, {"email": "b@example.com"})
    client.count({})
    client.post("/v1/selections/preview", json={"selection": {}, "limit": 1})
    job = client.run({}, [{"type": "add_tags", "tags": ["measured"]}])
    client.get(f"/v1/jobs/{job['id']}")
    client.get("/v1/no/such/path/12345")
    after = scrape(api)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/jobs/{job_id}"
    assert grew("audience_http_requests_total", method="GET", route=route, status="200") >= 1
    assert grew("audience_http_request_duration_seconds_count", method="GET", route=route) >= 1
    assert grew("audience_http_requests_total", route="unmatched", status="404") == 1
    assert grew("audience_selection_duration_seconds_count", operation="count") == 1
    assert grew("audience_selection_duration_seconds_count", operation="preview") == 1
    assert grew("audience_job_chunk_duration_seconds_count", kind="actions") >= 1
    assert grew("audience_job_rows_applied_total", kind="actions") >= 2
    assert value(after, "audience_jobs", kind="actions", status="succeeded") >= 1
    assert "audience_job_queue_depth" in after
    assert "audience_webhook_deliveries_pending" in after

    labels = {v for samples in after.values() for s in samples for v in s.labels.values()}
    assert not any("example.com" in v or client.key[:8] in v for v in labels)
    routes = {s.labels["route"] for ss in after.values() for s in ss if "route" in s.labels}
    assert "/v1/no/such/path/12345" not in routes and f"/v1/jobs/{job['id']}" not in routes
    assert not [r for r in routes if re.search(r"/[0-9]+(/|$)", r)], routes  # no ids
