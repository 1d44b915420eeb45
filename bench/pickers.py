"""Pickers and listings over HTTP, as a front end calls them while a person builds a
selection: tags, owners, event types and detail names with their counts, funnels with the
contacts at each stage, groups with their members, mailings with their recipients, a page
of contacts and a prefix search.

    python -m bench.pickers [--url postgresql://…/audience_bench] [--contacts 1000000] [--runs 5]

Each through `audience serve` logged in as audience_app (row-level security, as
production runs), the median of `--runs` after one warm-up. Target: each under 300 ms.
"""

import argparse

import httpx

from bench.common import (
    DEFAULT_URL,
    Server,
    database,
    median,
    seeded_account,
    table,
    timed,
    verdict,
)

TARGET_S = 0.3
APP_ROLE = "?options=-c%20role%3Daudience_app"
CALLS = [
    ("tags (name, contacts), first page", "/v1/tags?limit=100"),
    ("tags by prefix", "/v1/tags?prefix=lo&limit=20"),
    ("owners (email, contacts)", "/v1/owners"),
    ("event types (events, last at)", "/v1/event-types"),
    ("detail names (contacts)", "/v1/details"),
    ("funnels, contacts at each stage", "/v1/funnels"),
    ("groups, members", "/v1/groups"),
    ("mailings, recipients", "/v1/mailings"),
    ("contacts, a page of 100", "/v1/contacts?limit=100"),
    ("contacts, search by prefix", "/v1/contacts?q=ann&limit=20"),
]


def timings(http: httpx.Client, runs: int) -> dict[str, float]:
    """Each call's median seconds over `runs`, after one warm-up."""
    medians = {}
    for name, path in CALLS:
        http.get(path).raise_for_status()  # warm-up
        times = []
        for _ in range(runs):
            seconds, r = timed(lambda path=path: http.get(path))
            r.raise_for_status()
            times.append(seconds)
        medians[name] = median(times)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    engine = database(args.url)
    _, key = seeded_account(engine, args.contacts)
    url = args.url + ("" if args.url.startswith("sqlite") else APP_ROLE)
    with (
        Server(url, rate_limit_per_s=0) as server,
        httpx.Client(
            base_url=server.base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http,
    ):
        medians = timings(http, args.runs)
    rows = [
        [name, path, f"{medians[name] * 1000:.0f}", verdict(medians[name] < TARGET_S)]
        for name, path in CALLS
    ]
    print(
        f"\nPickers at {args.contacts:,} contacts ({args.url.rsplit('/', 1)[-1]}), median of {args.runs}\n"
    )
    print(table(["picker", "request", "ms", "< 300 ms"], rows))


if __name__ == "__main__":
    main()
