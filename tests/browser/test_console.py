"""The console in a real browser (headless Chromium) against a live server: on SQLite, and
on PostgreSQL with Redis and a real arq worker running the jobs. Each test composes in the
page as a person would and checks the answer against the API and the data."""

import csv
import io
import json
import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

CSS = By.CSS_SELECTOR

PEOPLE = [
    # e-mail, tags, groups, bought (PURCHASE events)
    ("ann@x.pl", ["VIP"], [], 2),
    ("bob@x.pl", ["VIP"], ["Blacklist"], 1),
    ("cid@x.pl", ["VIP"], [], 0),
    ("dan@x.pl", ["VIP", "Press"], [], 1),
    ("eve@x.pl", [], [], 3),
    ("fay@x.pl", ["vip"], [], 1),
]


def load(http, extra: int = 0) -> None:
    contacts = [
        {"email": e, "first_name": e.split("@")[0].title(), "tags": tags, "groups": groups}
        for e, tags, groups, _ in PEOPLE
    ]
    contacts += [{"email": f"many{i}@y.pl", "tags": ["VIP"]} for i in range(extra)]
    assert http.post("/v1/contacts", json={"contacts": contacts}).status_code == 200
    events = [
        {"email": e, "type": "PURCHASE", "occurred_at": "2026-11-01T10:00:00Z", "value": 10}
        for e, _, _, n in PEOPLE
        for _ in range(n)
    ]
    assert http.post("/v1/events", json={"events": events}).status_code == 200


def wait(browser, until, timeout: float = 20, what: str = "the page"):
    """`until` is asked again while it reads an element the page has just drawn anew."""
    return WebDriverWait(
        browser, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(lambda d: until(d), message=f"waiting for {what}")


def errors(browser, allow: tuple[str, ...] = ()) -> list[str]:
    """The browser console's errors, but the ones allowed (e.g. an expected 422)."""
    return [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)
    ]


def open_console(browser, live, key: str) -> None:
    browser.get(f"{live.url}/console")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{live.url}/console")
    browser.find_element(By.ID, "key-input").send_keys(key, Keys.ENTER)
    wait(
        browser, lambda d: d.find_element(By.ID, "count").get_attribute("data-total"), what="count"
    )
    browser.get_log("browser")  # start each test with an empty log


def counted(browser, spec: dict, timeout: float = 20) -> int:
    """The total the page shows once it has counted exactly `spec`."""
    el = browser.find_element(By.ID, "count")

    def done(_):
        shown = el.get_attribute("data-spec")
        return shown is not None and json.loads(shown) == spec

    wait(browser, done, timeout, what=f"the count of {spec}")
    return int(el.get_attribute("data-total"))


def shown_spec(browser) -> dict:
    return json.loads(browser.find_element(By.ID, "spec-json").get_attribute("value"))


def type_into_focus(browser, *keys) -> None:
    browser.switch_to.active_element.send_keys(*keys)


def add_selector(browser, side: str, kind: str, *names: str) -> None:
    browser.find_element(By.ID, f"add-{side}-{kind}").click()
    for name in names:
        type_into_focus(browser, name, Keys.ENTER)


def test_compose_tag_exclude_group_nested_event_count_equals_api(browser, live, http, key, shot):
    load(http)
    open_console(browser, live, key)
    add_selector(browser, "include", "tag", "VIP")
    add_selector(browser, "exclude", "group", "Blacklist")
    # filter: a nested "any of" group holding an event test: at least 1 PURCHASE
    browser.find_element(CSS, ".group.root > .adders button[id$='-add-group']").click()
    browser.find_element(CSS, ".group.root .group select[id$='-op']").send_keys("any of")
    browser.find_element(CSS, ".group.root .group button[id$='-add-event']").click()
    event_row = browser.find_element(CSS, ".group.root .group .cond-row.cond-event")
    event_row.find_element(CSS, "input[id$='-type']").send_keys("PURCHASE")
    value = event_row.find_element(CSS, "input[id$='-value']")
    value.clear()
    value.send_keys("1")
    expected = {
        "include": [{"type": "tag", "tags": ["VIP"]}],
        "exclude": [{"type": "group", "groups": ["Blacklist"]}],
        "filter": {
            "and": [
                {"or": [{"event": {"type": "PURCHASE"}, "agg": "count", "op": "gte", "value": 1}]}
            ]
        },
    }
    total = counted(browser, expected)
    shot("composed")
    api_total = http.post("/v1/selections/count", json=expected).json()["total"]
    # ann, dan, fay (vip is VIP): bob is blacklisted, cid bought nothing, eve is no VIP
    assert total == api_total == 3
    assert shown_spec(browser) == expected
    assert browser.find_element(By.ID, "count").text == "3"
    # the preview lists the same contacts
    browser.find_element(By.ID, "preview-show").click()
    wait(
        browser, lambda d: len(d.find_elements(CSS, "#preview-table tbody tr")) == 3, what="preview"
    )
    emails = {
        td.text for td in browser.find_elements(CSS, "#preview-table tbody tr td:nth-child(2)")
    }
    assert emails == {"ann@x.pl", "dan@x.pl", "fay@x.pl"}
    shot("preview")
    assert errors(browser) == []


def test_a_typo_in_a_group_shows_the_422_at_its_row(browser, live, http, key, shot):
    load(http)
    open_console(browser, live, key)
    add_selector(browser, "include", "tag", "VIP")
    add_selector(browser, "exclude", "group", "Blacklst")
    row = browser.find_element(CSS, ".exclude .selector-row")
    wait(browser, lambda d: "invalid" in row.get_attribute("class"), what="the row marked")
    message = row.find_element(CSS, ".row-error").text
    assert "no group named 'Blacklst'" in message and "Blacklist" in message
    # the include row, which is fine, is not marked
    ok_row = browser.find_element(CSS, ".include .selector-row")
    assert "invalid" not in ok_row.get_attribute("class")
    assert browser.find_element(By.ID, "count").get_attribute("data-total") is None
    shot("typo")
    # fixed: the mark goes away and the count comes back
    row.find_element(CSS, "button.chip-x").click()
    type_into_focus(browser, "Blacklist", Keys.ENTER)
    spec = {
        "include": [{"type": "tag", "tags": ["VIP"]}],
        "exclude": [{"type": "group", "groups": ["Blacklist"]}],
    }
    assert counted(browser, spec) == 4
    assert "invalid" not in row.get_attribute("class")
    assert errors(browser, allow=("status of 422",)) == []


def _job_card(browser, scope: str = ""):
    return browser.find_element(CSS, f"{scope} article.job")


def test_run_a_job_of_two_actions_see_it_finish_then_revert_it(browser, live, http, key, shot):
    load(http, extra=40)  # 45 VIP contacts: several chunks of 5, so the bar moves
    open_console(browser, live, key)
    add_selector(browser, "include", "tag", "VIP")
    spec = {"include": [{"type": "tag", "tags": ["VIP"]}]}
    assert counted(browser, spec) == 45
    picker = Select(browser.find_element(By.ID, "add-action"))
    picker.select_by_visible_text("Add tags")
    browser.find_element(By.ID, "add-action-button").click()
    type_into_focus(browser, "black-friday", Keys.ENTER)
    picker.select_by_visible_text("Set score")
    browser.find_element(By.ID, "add-action-button").click()
    card = browser.find_elements(CSS, ".action")[1]
    Select(card.find_element(CSS, "select[id$='-mode']")).select_by_value("add")
    score = card.find_element(CSS, "input[id$='-value']")
    score.clear()
    score.send_keys("10")
    browser.find_element(By.ID, "dry-run").click()
    wait(browser, lambda d: d.find_elements(By.ID, "dry-run-total"), what="the dry run")
    affected = [
        int(td.get_attribute("data-affected"))
        for td in browser.find_elements(CSS, "#dry-run-result td.num")
    ]
    assert browser.find_element(By.ID, "dry-run-total").text == "45" and affected == [45, 45]
    shot("dry-run")
    browser.find_element(By.ID, "perform").click()
    dialog = browser.find_element(By.ID, "confirm")
    wait(browser, lambda d: dialog.is_displayed(), what="the confirmation")
    assert "45 contacts" in dialog.find_element(By.ID, "confirm-title").text
    shot("confirm")
    browser.find_element(By.ID, "confirm-ok").click()
    card = wait(browser, lambda d: d.find_elements(CSS, "#dry-run-result article.job"), what="job")[
        0
    ]
    bar = card.find_element(CSS, "[role=progressbar]")
    wait(browser, lambda d: bar.get_attribute("aria-valuenow") == "100", 60, what="100 %")
    wait(browser, lambda d: card.get_attribute("data-status") == "succeeded", 30, what="success")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", card)
    time.sleep(0.4)  # the bar's last glide
    shot("done")
    job_id = int(card.get_attribute("id").removeprefix("job-"))
    job = http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["total"] == 45
    assert [a["affected"] for a in job["actions"]] == [45, 45]
    assert card.find_elements(CSS, ".affected [data-affected]")[0].text == "45"
    after = http.post(
        "/v1/selections/count", json={"include": [{"type": "tag", "tags": ["black-friday"]}]}
    ).json()["total"]
    assert after == 45

    # Jobs tab: the job in the history; revert it after its dry run
    browser.find_element(By.ID, "tab-jobs").click()
    listed = wait(
        browser, lambda d: d.find_elements(CSS, f"#job-list #job-{job_id}"), what="history"
    )[0]
    listed.find_element(By.XPATH, ".//button[starts-with(., 'Revert')]").click()
    wait(browser, lambda d: dialog.is_displayed(), what="the revert confirmation")
    assert "45 contacts" in dialog.find_element(By.ID, "confirm-body").text
    shot("revert-dry-run")
    browser.find_element(By.ID, "confirm-ok").click()
    revert = wait(
        browser,
        lambda d: [
            c
            for c in d.find_elements(CSS, "#job-list article.job")
            if c.get_attribute("id") != f"job-{job_id}"
        ],
        what="the revert job",
    )[0]
    wait(browser, lambda d: revert.get_attribute("data-status") == "succeeded", 60, what="revert")
    time.sleep(0.4)
    shot("reverted")
    assert (
        http.post(
            "/v1/selections/count", json={"include": [{"type": "tag", "tags": ["black-friday"]}]}
        ).json()["total"]
        == 0
    )
    scores = http.post(
        "/v1/selections/count", json={"filter": {"field": "score", "op": "gt", "value": 0}}
    ).json()["total"]
    assert scores == 0
    assert errors(browser) == []


def test_export_the_selection(browser, live, http, key, shot, downloads):
    load(http)
    open_console(browser, live, key)
    add_selector(browser, "include", "tag", "VIP")
    spec = {"include": [{"type": "tag", "tags": ["VIP"]}]}
    assert counted(browser, spec) == 5
    for old in downloads.iterdir():
        old.unlink()
    browser.find_element(By.ID, "export").click()
    status = browser.find_element(By.ID, "export-status")
    wait(browser, lambda d: status.get_attribute("data-size"), what="the export")
    shot("exported")
    expected = http.post("/v1/selections/export", json={"selection": spec, "format": "csv"}).content
    assert int(status.get_attribute("data-size")) == len(expected)
    files = wait(
        browser, lambda d: [p for p in downloads.iterdir() if p.suffix == ".csv"], what="file"
    )
    rows = list(csv.DictReader(io.StringIO(files[0].read_text("utf-8-sig"))))
    assert sorted(r["email"] for r in rows) == [
        "ann@x.pl",
        "bob@x.pl",
        "cid@x.pl",
        "dan@x.pl",
        "fay@x.pl",
    ]
    assert errors(browser) == []


def _tab_to(browser, element_id: str, limit: int = 80) -> None:
    """Press Tab until the element has the focus (keyboard only)."""
    for _ in range(limit):
        if browser.switch_to.active_element.get_attribute("id") == element_id:
            return
        browser.switch_to.active_element.send_keys(Keys.TAB)
    raise AssertionError(f"#{element_id} is not reachable with Tab")


def test_keyboard_only_compose_count_dry_run(browser, live, http, key, shot):
    load(http)
    browser.get(f"{live.url}/console")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{live.url}/console")
    browser.find_element(CSS, "body").send_keys(Keys.TAB)  # focus enters the page
    _tab_to(browser, "key-input")
    type_into_focus(browser, key, Keys.ENTER)
    wait(
        browser, lambda d: d.find_element(By.ID, "count").get_attribute("data-total"), what="count"
    )
    browser.get_log("browser")
    _tab_to(browser, "add-include-tag")
    type_into_focus(browser, Keys.ENTER)
    type_into_focus(browser, "VIP", Keys.ENTER)
    assert counted(browser, {"include": [{"type": "tag", "tags": ["VIP"]}]}) == 5
    _tab_to(browser, "add-action")
    type_into_focus(browser, "Add tags")
    type_into_focus(browser, Keys.TAB)  # to the Add button
    type_into_focus(browser, Keys.ENTER)
    assert [a.text.split("\n")[0] for a in browser.find_elements(CSS, ".action .action-head")] == [
        "1. Add tags"
    ]
    _tab_to(browser, browser.find_element(CSS, ".action .chips input").get_attribute("id"))
    type_into_focus(browser, "keyboard", Keys.ENTER)
    _tab_to(browser, "dry-run")
    type_into_focus(browser, Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.ID, "dry-run-total"), what="the dry run")
    assert browser.find_element(By.ID, "dry-run-total").text == "5"
    shot("keyboard")
    assert errors(browser) == []


def test_usable_at_390_px(browser, live, http, key, shot):
    """A phone's viewport (390 CSS px, emulated: a headless window has a minimum width):
    nothing scrolls sideways, and the count stays in sight while scrolling to the actions."""
    load(http)
    phone = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    try:
        open_console(browser, live, key)
        assert browser.execute_script("return window.innerWidth") == 390
        add_selector(browser, "include", "tag", "VIP")
        browser.find_element(CSS, ".group.root > .adders button[id$='-add-event']").click()
        spec = {
            "include": [{"type": "tag", "tags": ["VIP"]}],
            "filter": {"and": [{"event": {}, "agg": "count", "op": "gte", "value": 1}]},
        }
        assert counted(browser, spec) == 4  # VIPs with any event: all but cid
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways: {width} > 390"
        shot("390px")
        browser.execute_script("document.getElementById('add-action').scrollIntoView()")
        count = browser.find_element(By.ID, "count").rect
        assert 0 <= count["y"] - browser.execute_script("return window.scrollY") < 100
        shot("390px-actions")
        assert errors(browser) == []
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_read_key_sees_no_actions(browser, live, http, shot):
    load(http)
    made = http.post("/v1/keys", json={"label": "viewer", "scope": "read"}).json()
    open_console(browser, live, made["key"])
    assert "read-only" in browser.find_element(By.ID, "who-label").text
    assert not browser.find_element(CSS, ".actions-card").is_displayed()
    assert not browser.find_element(By.ID, "tab-import").is_displayed()
    add_selector(browser, "include", "tag", "VIP")
    assert counted(browser, {"include": [{"type": "tag", "tags": ["VIP"]}]}) == 5
    shot("read-key")
    assert errors(browser) == []


def test_pasted_json_fills_the_form(browser, live, http, key, shot):
    load(http)
    open_console(browser, live, key)
    spec = {
        "include": [{"type": "tag", "tags": ["VIP"], "match": "all"}],
        "filter": {
            "not": {
                "or": [
                    {"field": "email", "op": "ends_with", "value": "@x.pl"},
                    {"field": "score", "op": "between", "value": [1, 5]},
                ]
            }
        },
    }
    browser.find_element(CSS, "details.json summary").click()
    box = browser.find_element(By.ID, "spec-json")
    box.clear()
    box.send_keys(json.dumps(spec))
    browser.find_element(By.ID, "spec-apply").click()
    assert counted(browser, spec) == http.post("/v1/selections/count", json=spec).json()["total"]
    assert len(browser.find_elements(CSS, ".cond-row.cond-field")) == 2
    assert browser.find_element(CSS, ".group.root > .group-head input[type=checkbox]").is_selected()
    shot("pasted")
    assert errors(browser) == []


def test_import_a_csv_with_a_column_mapping(browser, live, http, key, shot, tmp_path, downloads):
    # Skipped only while POST /v1/imports is absent: it is built on its own branch.
    if "/v1/imports" not in httpx_paths(live):
        pytest.skip("POST /v1/imports is not on this branch yet (built on another branch)")
    open_console(browser, live, key)
    browser.find_element(By.ID, "tab-import").click()
    path = tmp_path / "people.csv"
    path.write_text("E-mail;Imię;Miasto\nola@x.pl;Ola;Łódź\nnot-an-email;Jan;Kraków\n", "utf-8")
    browser.find_element(By.ID, "import-file").send_keys(str(path))
    rows = wait(browser, lambda d: d.find_elements(CSS, "#mapping-table tbody tr"), what="mapping")
    assert len(rows) == 3
    assert browser.find_element(By.ID, "map-0").get_attribute("value") == "email"  # auto-mapped
    Select(browser.find_element(By.ID, "map-1")).select_by_value("first_name")
    Select(browser.find_element(By.ID, "map-2")).select_by_value("city")
    shot("mapping")
    for old in downloads.iterdir():
        old.unlink()
    browser.find_element(By.ID, "import-submit").click()
    card = wait(browser, lambda d: d.find_elements(CSS, "#import-jobs article.job"), what="job")[0]
    wait(browser, lambda d: card.get_attribute("data-status") == "succeeded", 60, what="import")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", card)
    time.sleep(0.4)
    shot("imported")
    assert card.find_element(CSS, ".rejected").text == "1"
    found = http.get("/v1/contacts", params={"email": "ola@x.pl"}).json()
    contact = found["contacts"][0] if "contacts" in found else found[0]
    assert (contact["first_name"], contact["city"]) == ("Ola", "Łódź")
    # the rejected rows, as a CSV download
    card.find_element(By.XPATH, ".//button[.='Download rejected rows']").click()
    files = wait(
        browser, lambda d: [p for p in downloads.iterdir() if p.suffix == ".csv"], what="csv"
    )
    rejected = list(csv.DictReader(io.StringIO(files[0].read_text("utf-8-sig"))))
    assert [r["line"] for r in rejected] == ["3"] and "not-an-email" in rejected[0]["row"]
    assert errors(browser) == []


def httpx_paths(live) -> set[str]:
    import httpx

    return set(httpx.get(f"{live.url}/openapi.json", timeout=10).json()["paths"])


# The page's fetch, wrapped so that the first count's answer arrives 1.5 s late whatever
# the page does (it ignores the abort): the late, older answer must not be shown.
SLOW_FIRST_COUNT = """
const original = window.fetch;
let counts = 0;
window.fetch = async (url, init = {}) => {
  if (String(url).includes("/v1/selections/count") && counts++ === 0) {
    const { signal, ...rest } = init;
    const answer = await original(url, rest);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return answer;
  }
  return original(url, init);
};
"""


def test_a_late_answer_to_an_older_selection_never_replaces_the_newer(browser, live, http, key):
    load(http)
    open_console(browser, live, key)
    browser.execute_script(SLOW_FIRST_COUNT)
    add_selector(browser, "include", "tag", "VIP")
    time.sleep(0.7)  # its count is under way, and slow
    status = browser.find_element(By.ID, "count-status")
    assert status.text == "counting…"
    add_selector(browser, "exclude", "group", "Blacklist")
    spec = {
        "include": [{"type": "tag", "tags": ["VIP"]}],
        "exclude": [{"type": "group", "groups": ["Blacklist"]}],
    }
    assert counted(browser, spec) == 4
    time.sleep(1.5)  # the first answer (5) has arrived by now, and was dropped
    count = browser.find_element(By.ID, "count")
    assert count.text == "4" and json.loads(count.get_attribute("data-spec")) == spec
    assert errors(browser) == []


def test_funnel_and_mailing_selectors_saved_as_a_segment_and_loaded(browser, live, http, key, shot):
    load(http)
    funnel = {"name": "Sales", "stages": ["Lead", "Won"]}
    assert http.post("/v1/funnels", json=funnel).status_code == 201
    stages = [("ann@x.pl", "Won"), ("bob@x.pl", "Lead"), ("cid@x.pl", "Won")]
    contacts = [{"email": e, "funnels": {"Sales": s}} for e, s in stages]
    assert http.post("/v1/contacts", json={"contacts": contacts}).status_code == 200
    mailing = http.post(
        "/v1/mailings",
        json={
            "name": "Newsletter",
            "sent_at": "2026-11-02T08:00:00Z",
            "recipients": [
                {"email": "ann@x.pl", "opened_at": "2026-11-02T09:00:00Z"},
                {"email": "eve@x.pl", "opened_at": "2026-11-03T09:00:00Z"},
                {"email": "dan@x.pl"},
            ],
        },
    ).json()
    open_console(browser, live, key)
    browser.find_element(By.ID, "add-include-funnel").click()
    funnel_select = browser.find_element(CSS, ".include select[id$='-funnel']")
    wait(browser, lambda d: len(funnel_select.find_elements(CSS, "option")) > 1, what="funnels")
    Select(funnel_select).select_by_value("Sales")
    won = wait(
        browser,
        lambda d: [el for el in d.find_elements(CSS, ".include .stages label") if "Won" in el.text],
        what="stages",
    )[0]
    won.click()
    browser.find_element(By.ID, "add-include-mailing").click()
    mailings = browser.find_element(CSS, ".include select[id$='-mailings']")
    wait(browser, lambda d: mailings.find_elements(CSS, "option"), what="mailings")
    Select(mailings).select_by_value(str(mailing["id"]))
    Select(browser.find_element(CSS, ".include select[id$='-event']")).select_by_value("opened")
    spec = {
        "include": [
            {"type": "funnel", "funnel": "Sales", "stages": ["Won"]},
            {"type": "mailing", "mailings": [mailing["id"]], "event": "opened"},
        ]
    }
    assert counted(browser, spec) == 3  # ann, cid (Won); ann, eve (opened)
    assert http.post("/v1/selections/count", json=spec).json()["total"] == 3
    shot("funnel-and-mailing")
    browser.find_element(By.ID, "segment-name").send_keys("Winners")
    browser.find_element(By.ID, "segment-save").click()
    segment = wait(
        browser,
        lambda d: [s for s in http.get("/v1/segments").json() if s["name"] == "Winners"],
        what="the saved segment",
    )[0]
    assert segment["selection"]["include"] == spec["include"]
    # a fresh page: load the segment back into the form
    browser.refresh()
    wait(
        browser, lambda d: d.find_element(By.ID, "count").get_attribute("data-total"), what="count"
    )
    load_select = browser.find_element(By.ID, "segment-load")
    wait(browser, lambda d: len(load_select.find_elements(CSS, "option")) > 1, what="segments")
    Select(load_select).select_by_visible_text("Winners")
    assert counted(browser, spec) == 3
    assert browser.find_element(CSS, ".include .stages input:checked")
    shot("segment-loaded")
    # and as a selector of its own
    browser.find_element(By.ID, "add-exclude-segment").click()
    type_into_focus(browser, "Winners", Keys.ENTER)
    spec["exclude"] = [{"type": "segment", "segments": ["Winners"]}]
    assert counted(browser, spec) == 0
    assert errors(browser) == []


def test_a_scheduled_job_is_queued_then_cancelled(browser, live, http, key, shot):
    load(http)
    open_console(browser, live, key)
    add_selector(browser, "include", "tag", "VIP")
    assert counted(browser, {"include": [{"type": "tag", "tags": ["VIP"]}]}) == 5
    Select(browser.find_element(By.ID, "add-action")).select_by_visible_text("Add tags")
    browser.find_element(By.ID, "add-action-button").click()
    type_into_focus(browser, "later", Keys.ENTER)
    browser.find_element(CSS, ".actions-card details.more summary").click()
    browser.find_element(By.ID, "job-name").send_keys("Next year")
    run_at = browser.find_element(By.ID, "run-at")
    browser.execute_script("arguments[0].value = '2030-01-02T10:00'", run_at)
    browser.find_element(By.ID, "perform").click()
    browser.find_element(By.ID, "confirm-ok").click()
    card = wait(browser, lambda d: d.find_elements(CSS, "#dry-run-result article.job"), what="job")[
        0
    ]
    wait(browser, lambda d: card.get_attribute("data-status") == "queued", what="queued")
    assert "runs at 2030-01-02 10:00 UTC" in card.text and "Next year" in card.text
    shot("scheduled")
    card.find_element(By.XPATH, ".//button[.='Cancel']").click()
    wait(browser, lambda d: card.get_attribute("data-status") == "cancelled", 30, what="cancel")
    shot("cancelled")
    job_id = int(card.get_attribute("id").removeprefix("job-"))
    job = http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["name"] == "Next year"
    assert job["run_at"].startswith("2030-01-02T10:00")
    tagged = {"include": [{"type": "tag", "tags": ["later"]}]}
    r = http.post("/v1/selections/count", json=tagged)  # 422 while no contact ever had it
    assert r.status_code == 422 or r.json()["total"] == 0
    # the history, filtered by status
    browser.find_element(By.ID, "tab-jobs").click()
    Select(browser.find_element(By.ID, "jobs-status")).select_by_value("succeeded")
    wait(browser, lambda d: not d.find_elements(CSS, f"#job-list #job-{job_id}"), what="filter")
    Select(browser.find_element(By.ID, "jobs-status")).select_by_value("cancelled")
    wait(browser, lambda d: d.find_elements(CSS, f"#job-list #job-{job_id}"), what="filter")
    assert errors(browser) == []


# Every visible control's accessible name: aria-label, its <label>s, or a button's text.
UNNAMED = """
return [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => {
    const labels = [...(el.labels || [])].map((l) => l.textContent).join(" ");
    const text = el.tagName === "BUTTON" ? el.textContent : "";
    return !((el.getAttribute("aria-label") || labels || text || el.title || "").trim());
  })
  .map((el) => el.outerHTML.slice(0, 160));
"""


def test_every_control_has_an_accessible_name(browser, live, http, key, shot):
    load(http, extra=25)
    open_console(browser, live, key)
    for kind in ("tag", "funnel", "mailing", "group", "segment"):
        browser.find_element(By.ID, f"add-include-{kind}").click()
    browser.find_element(By.ID, "add-exclude-tag").click()
    for kind in ("field", "detail", "event", "selector", "group"):
        browser.find_element(CSS, f".group.root > .adders button[id$='-add-{kind}']").click()
    for summary in browser.find_elements(CSS, "details summary"):
        if summary.is_displayed():
            summary.click()
    picker = Select(browser.find_element(By.ID, "add-action"))
    for option in [o.get_attribute("value") for o in picker.options if o.get_attribute("value")]:
        picker.select_by_value(option)
        browser.find_element(By.ID, "add-action-button").click()
    browser.find_element(By.ID, "preview-show").click()
    wait(browser, lambda d: d.find_elements(CSS, "#preview-table tbody tr"), what="preview")
    assert browser.execute_script(UNNAMED) == []
    shot("everything")
    # a dry run of them all, blank: each action missing a field says so at its own row
    browser.find_element(By.ID, "dry-run").click()
    wait(browser, lambda d: d.find_elements(CSS, ".action.invalid"), what="the 422 at the rows")
    invalid = browser.find_elements(CSS, ".action.invalid")
    assert all(row.find_element(CSS, ".row-error").text for row in invalid)
    heads = [row.find_element(CSS, ".action-head strong").text for row in invalid]
    assert any("Add tags" in head for head in heads), heads
    assert not any(head.split(". ", 1)[1] == "Delete" for head in heads), heads  # no fields
    shot("actions-422")
    for tab in ("tab-jobs", "tab-import"):
        browser.find_element(By.ID, tab).click()
        assert browser.execute_script(UNNAMED) == []
    assert errors(browser, allow=("status of 422",)) == []


def test_the_preview_pages_with_chosen_columns(browser, live, http, key, shot):
    load(http, extra=25)
    open_console(browser, live, key)
    add_selector(browser, "include", "tag", "VIP")
    assert counted(browser, {"include": [{"type": "tag", "tags": ["VIP"]}]}) == 30
    browser.find_element(By.ID, "preview-show").click()
    info = browser.find_element(CSS, ".pager .hint")
    wait(browser, lambda d: info.text == "1–20 of 30", what="page 1")
    browser.find_element(By.ID, "preview-next").click()
    wait(browser, lambda d: info.text == "21–30 of 30", what="page 2")
    assert not browser.find_element(By.ID, "preview-next").is_enabled()
    browser.find_element(By.ID, "preview-prev").click()
    wait(browser, lambda d: info.text == "1–20 of 30", what="page 1 again")
    # a column more, one fewer
    browser.find_element(CSS, ".columns summary").click()
    for name in ("company", "city"):
        box = browser.find_element(
            By.XPATH, f"//details[@class='columns']//label[normalize-space(.)='{name}']"
        )
        box.click()
    read_heads = "return [...document.querySelectorAll('#preview-table thead th')].map((th) => th.textContent)"
    wait(
        browser,
        lambda d: (
            "company" in d.execute_script(read_heads) and "city" not in d.execute_script(read_heads)
        ),
        what="columns",
    )
    heads = browser.execute_script(read_heads)
    assert "company" in heads and "city" not in heads
    shot("preview-columns")
    assert errors(browser) == []


def test_generated_coupons_download_as_the_jobs_output(browser, live, http, key, downloads):
    load(http)
    open_console(browser, live, key)
    add_selector(browser, "include", "tag", "VIP")
    assert counted(browser, {"include": [{"type": "tag", "tags": ["VIP"]}]}) == 5
    Select(browser.find_element(By.ID, "add-action")).select_by_value("generate_coupons")
    browser.find_element(By.ID, "add-action-button").click()
    action = browser.find_element(CSS, ".action")
    action.find_element(CSS, "input[id$='-name']").send_keys("BF2026")
    action.find_element(CSS, "input[id$='-length']").send_keys("8")
    browser.find_element(By.ID, "perform").click()
    browser.find_element(By.ID, "confirm-ok").click()
    # by its id: the card is drawn anew as the job moves, and a card found once goes stale
    done = "#dry-run-result article.job[data-status='succeeded']"
    card_id = wait(browser, lambda d: d.find_element(CSS, done).get_attribute("id"), 60, "coupons")
    for old in downloads.iterdir():
        old.unlink()

    def download(d) -> bool:
        d.find_element(By.ID, card_id).find_element(
            By.XPATH, ".//button[.='Download output']"
        ).click()
        return True

    wait(browser, download, what="the download button")
    files = wait(
        browser, lambda d: [p for p in downloads.iterdir() if p.suffix == ".csv"], what="csv"
    )
    rows = list(csv.DictReader(io.StringIO(files[0].read_text("utf-8-sig"))))
    assert sorted(r["email"] for r in rows) == [
        "ann@x.pl",
        "bob@x.pl",
        "cid@x.pl",
        "dan@x.pl",
        "fay@x.pl",
    ]
    assert all(len(r["value"]) == 8 for r in rows)
    assert errors(browser) == []


def test_a_revoked_key_returns_to_the_key_form(browser, live, http, shot):
    load(http)
    made = http.post("/v1/keys", json={"label": "temp", "scope": "full"}).json()
    open_console(browser, live, made["key"])
    assert http.delete(f"/v1/keys/{made['id']}").status_code in (200, 204)
    add_selector(browser, "include", "tag", "VIP")
    error = browser.find_element(By.ID, "login-error")
    wait(
        browser, lambda d: error.is_displayed() and "no longer accepted" in error.text, what="form"
    )
    assert not browser.find_element(By.ID, "panel-compose").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0
    shot("revoked")
    assert errors(browser, allow=("status of 401",)) == []
