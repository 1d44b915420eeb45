"""The one log line a request writes never carries a personal link's token."""

from structlog.testing import capture_logs


def test_a_link_token_stays_out_of_the_request_log(client):
    with capture_logs() as logged:
        assert client.get("/v1/links/S3cr3tT0ken-of-a-contact").status_code == 404
    (line,) = [e for e in logged if e["event"] == "request"]
    assert line["path"] == "/v1/links/[token]"
    assert "S3cr3tT0ken" not in repr(logged)
