"""What a browser's requests meet: a JSON body sent as text/plain (fetch with a string
body) is read as JSON; malformed JSON is a 422 at `body` with its line and column; an
Authorization header without Bearer says the expected form; CORS lets scripts read the
headers they need."""


def test_a_json_body_without_its_content_type_is_json(client):
    client.load({"email": "a@x.pl", "tags": ["VIP"]})
    body = '{"include": [{"type": "tag", "tags": ["VIP"]}]}'
    for kind in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": kind} if kind else {}
        r = client.post("/v1/selections/count", content=body, headers=headers)
        assert r.status_code == 200 and r.json() == {"total": 1}, (kind, r.text)


def test_malformed_json_names_line_and_column(client):
    r = client.post("/v1/selections/count", content='{\n  "include": [}\n', headers={})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["details"] == [{"path": "body", "message": error["message"]}]
    assert error["message"].startswith("malformed JSON at line 2, column 15")


def test_authorization_without_bearer_says_the_form(api, client):
    r = api.get("/v1/jobs", headers={"Authorization": client.key})
    assert r.status_code == 401 and "Bearer <api key>" in r.json()["error"]["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = api.get("/v1/jobs")
    assert r.status_code == 401 and r.json()["error"]["message"].startswith("missing API key")


def test_cors_exposes_what_scripts_read(api, client):
    r = api.get("/v1/jobs", headers={**client.headers, "Origin": "http://shop.example"})
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert exposed >= {"retry-after", "content-disposition", "location", "x-request-id"}
