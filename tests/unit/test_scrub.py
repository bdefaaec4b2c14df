"""Scrubber: which credentials are secret, which echoes of them are found, and JSON stays JSON."""

import base64
from urllib.parse import quote

import orjson
import pytest
from pydantic import ValidationError

from router.config import BackendConfig
from router.upstream.scrub import MARK, Scrubber, reports_error, secret_values

KEY = "sk-proj-Q8wLz3Rt7Yx2Vb5Nm9Kj4Hg6Fd1Sa0Pe"
SCRUB = Scrubber([KEY])


def config(**fields: object) -> BackendConfig:
    return BackendConfig.model_validate({"name": "b", "url": "http://up/v1", **fields})


def test_secret_values_take_the_key_and_credential_headers():
    headers = {
        "Authorization": "Bearer tok-1234567890",
        "X-Api-Key": "xak-abcdefgh",
        "X-Org-Token": "org-secret-1",
        "X-Tenant": "public-tenant",
    }
    values = secret_values(config(api_key=KEY, headers=headers, secret_headers=["x-org-token"]))
    assert values == (
        KEY,
        "Bearer tok-1234567890",
        "tok-1234567890",  # the credential without its scheme
        "xak-abcdefgh",
        "org-secret-1",
    )


def test_a_backend_without_credentials_has_no_scrubber():
    assert secret_values(config(headers={"X-Tenant": "t"})) == ()
    assert Scrubber.of(()) is None


def test_secret_headers_must_name_a_header():
    with pytest.raises(ValidationError, match="secret_headers names headers not in"):
        config(headers={"X-Org-Token": "t"}, secret_headers=["X-Org-Tokn"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Incorrect API key provided: {KEY}.", f"Incorrect API key provided: {MARK}."),
        (f"key {KEY[:12]}... was refused", f"key {MARK}... was refused"),  # cut to a prefix
        (f"key ...{KEY[-12:]}", f"key ...{MARK}"),  # a suffix
        (f"{KEY[:13]}*****{KEY[-12:]}", f"{MARK}*****{MARK}"),  # masked with long ends
        (f"{KEY[5:20]}", MARK),  # a middle run
        ("sk-proj-****************Sa0Pe", "sk-proj-****************Sa0Pe"),  # OpenAI's mask
        (f"url: ?key={quote(KEY, safe='')}", f"url: ?key={MARK}"),
        (f"basic {base64.b64encode(KEY.encode()).decode()}", f"basic {MARK}"),
        (f"{KEY}{KEY}!", f"{MARK}{MARK}!"),
        ("Invalid value for 'temperature': 3.", "Invalid value for 'temperature': 3."),
        (f"{KEY[:11]} is too short to say anything", f"{KEY[:11]} is too short to say anything"),
    ],
)
def test_text(text: str, expected: str):
    assert SCRUB.text(text) == expected


def test_a_short_secret_is_matched_whole():
    scrub = Scrubber(["tok-1234"])
    assert scrub.text("tok-1234, tok-123") == f"{MARK}, tok-123"


def test_words_of_a_human_chosen_secret_survive():
    scrub = Scrubber(["upstream-secret-key-aaaa"])
    assert scrub.text("upstream says bye") == "upstream says bye"
    assert scrub.text("key upstream-secret-k...") == f"key {MARK}..."


def test_json_body_stays_json_with_the_right_bytes():
    body = orjson.dumps({"error": {"message": f"bad key {KEY}", "type": "x", "code": None}})
    expected = {"error": {"message": f"bad key {MARK}", "type": "x", "code": None}}
    assert orjson.loads(SCRUB.body(body)) == expected


def test_json_escapes_do_not_hide_a_key():
    escaped = KEY.replace("s", "\\u0073", 1)
    body = b'{"error": {"message": "' + escaped.encode() + b'"}}'
    assert orjson.loads(SCRUB.body(body)) == {"error": {"message": MARK}}


def test_a_clean_body_is_relayed_byte_for_byte():
    body = b'{ "error" : {"message": "Invalid value"} }'
    assert SCRUB.body(body) is body


def test_a_text_body_is_scrubbed_as_text():
    assert SCRUB.body(f"401: {KEY}\n".encode() + b"\xff") == f"401: {MARK}\n".encode() + b"\xff"


def test_events_scrub_each_data_line():
    chunk = (
        b'data: {"choices":[]}\n\n'
        b"event: error\r\ndata: " + orjson.dumps({"error": {"message": KEY}}) + b"\r\n\r\n"
    )
    assert SCRUB.events(chunk) == (
        b'data: {"choices":[]}\n\nevent: error\r\ndata: {"error":{"message":"[redacted]"}}\r\n\r\n'
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'data: {"choices":[{"delta":{"content":"an error"}}]}\n\n', False),
        (b'data: {"choices":[{"delta":{"content":"say \\"error\\": x"}}]}\n\n', False),
        (b'event: response.completed\ndata: {"response":{"error":null}}\n\n', False),
        (b'event: response.completed\ndata: {"response":{"error" : null}}\n\n', False),
        (b'data: {"error":{"message":"x"}}\n\n', True),
        (b"event: error\ndata: {}\n\n", True),
        (b'event: response.failed\ndata: {"response":{"error":{"message":"x"}}}\n\n', True),
        (b'{"type":"error","error":{"message":"x"}}', True),
    ],
)
def test_reports_error(data: bytes, expected: bool):
    assert reports_error(data) is expected


def test_repr_hides_the_secrets():
    assert KEY not in repr(SCRUB)
    assert KEY[:8] not in repr(SCRUB)
