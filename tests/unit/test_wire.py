"""Pure helpers on the request path: SSE event boundaries, retry-after, bearer tokens, globs."""

from __future__ import annotations

import orjson
import pytest

from router.auth import KeyRing, Principal, bearer_token
from router.auth.keyformat import parse_key
from router.auth.keys import digest
from router.config import KeyConfig
from router.upstream.errors import parse_retry_after, retryable_status
from router.upstream.relay import _split_at_event_end, error_event


@pytest.mark.parametrize(
    ("data", "whole", "rest"),
    [
        (b"data: 1\n\ndata: 2", b"data: 1\n\n", b"data: 2"),
        (b"data: 1\n\ndata: 2\n\ndata: 3\n", b"data: 1\n\ndata: 2\n\n", b"data: 3\n"),
        (b"data: partial", b"", b"data: partial"),
        (b"event: a\r\ndata: 1\r\n\r\nevent: b", b"event: a\r\ndata: 1\r\n\r\n", b"event: b"),
        (b"", b"", b""),
    ],
)
def test_split_at_event_end(data: bytes, whole: bytes, rest: bytes) -> None:
    assert _split_at_event_end(data) == (whole, rest)


def test_error_event_is_what_the_sdk_raises_on() -> None:
    event = error_event("Backend x broke off the stream.")
    head, data = event.split(b"\n", 1)
    assert head == b"event: error"
    assert event.endswith(b"\n\n")
    body = orjson.loads(data.removeprefix(b"data: "))
    assert body["error"]["message"] == "Backend x broke off the stream."
    assert body["error"]["type"] == "server_error"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


@pytest.mark.parametrize(
    ("status", "retry"),
    [(500, True), (503, True), (429, True), (401, True), (400, False), (404, False), (422, False)],
)
def test_retryable_status(status: int, retry: bool) -> None:
    assert retryable_status(status) is retry


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer sk-1", "sk-1"),
        ("bearer  sk-2 ", "sk-2"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_principal_globs() -> None:
    principal = Principal("k1", "team", ["gpt-4o-mini*", "text-embedding-3-small"])
    assert principal.allows("gpt-4o-mini")
    assert principal.allows("gpt-4o-mini-2024-07-18")
    assert principal.allows("text-embedding-3-small")
    assert not principal.allows("gpt-4o")
    assert not principal.allows("text-embedding-3-large")


def test_keyring_holds_digests_only() -> None:
    ring = KeyRing([KeyConfig(name="demo", key="sk-secret-value-1", models=("*",))])
    principal = ring.lookup("sk-secret-value-1")
    assert principal is not None
    assert principal.key_id == "cfg-demo"
    assert ring.lookup("sk-secret-value-2") is None
    assert "sk-secret-value-1" not in repr(ring) + repr(principal)
    assert all(isinstance(k, bytes) and len(k) == 32 for k in ring.by_digest)


def test_a_config_key_in_the_stored_format_is_left_to_the_key_service() -> None:
    # The request path looks config keys up by digest before anything else: a key shaped like
    # a stored key must not be found there (the key service alone answers for that shape).
    stored_shape = "sk-sy-" + "a" * 12 + "-" + "B" * 43
    ring = KeyRing(
        [
            KeyConfig(name="shaped", key=stored_shape, models=("*",)),
            KeyConfig(name="plain", key="sk-secret-value-1", models=("*",)),
        ]
    )
    assert parse_key(stored_shape) is not None
    assert ring.lookup(stored_shape) is None
    assert ring.by_digest.get(digest(stored_shape)) is None
    found = ring.by_digest.get(digest("sk-secret-value-1"))
    assert found is not None
    assert found.key_id == "cfg-plain"
