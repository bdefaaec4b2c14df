"""The access line ``log_access`` writes: its fields in order, its milliseconds, and the same
fields when it goes through ``logging``; the request id's shape."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Iterator
from types import SimpleNamespace
from unittest import mock

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.context import RequestContext
from router.logs import LineHandler, access_logger, log_access

FIELDS = [
    "request_id",
    "method",
    "path",
    "status",
    "key_id",
    "model",
    "served_model",
    "backend",
    "attempts",
    "stream",
    "outcome",
    "upstream_request_id",
    "duration_ms",
]
RECORD = ["ts", "level", "logger", "pid", "msg"]
SECONDS = st.floats(min_value=0, max_value=1e6, allow_nan=False)


def ms(seconds: float) -> float:
    """What the line has always said: milliseconds to 3 places, rounded half up."""
    return int(seconds * 1_000_000 + 0.5) / 1000


@pytest.fixture
def wire() -> Iterator[io.BytesIO]:
    """The root logger's one LineHandler, on a UTF-8 stream over ``wire``."""
    raw = io.BytesIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = [LineHandler(io.TextIOWrapper(raw, encoding="utf-8"))]
    root.setLevel(logging.INFO)
    try:
        yield raw
    finally:
        root.handlers[0].flush()
        root.handlers[:] = handlers
        root.setLevel(level)


def lines(wire: io.BytesIO) -> list[dict[str, object]]:
    logging.getLogger().handlers[0].flush()
    return [orjson.loads(line) for line in wire.getvalue().splitlines()]


def finished(upstream: bool = True) -> RequestContext:
    ctx = RequestContext("chat")
    ctx.key_id, ctx.model, ctx.status, ctx.stream = "k1", "gpt-4o", 200, True
    if upstream:
        ctx.attempt("gpt-4o", "a")
        ctx.upstream_first_byte = ctx.upstream_started
        ctx.upstream_request_id = "up-1"
    return ctx


def test_the_fields_and_their_order(wire: io.BytesIO) -> None:
    log_access(finished(), "POST", "/v1/chat/completions")
    log_access(finished(upstream=False), "POST", "/v1/chat/completions")
    tried, untried = lines(wire)
    assert list(tried) == [*RECORD, *FIELDS, "ttfb_ms", "upstream_ms"]
    assert list(untried) == [*RECORD, *FIELDS]
    said = {name: tried[name] for name in ("level", "logger", "pid", "msg", "method", "path")}
    assert said == {
        "level": "info",
        "logger": "switchyard.access",
        "pid": os.getpid(),
        "msg": "request",
        "method": "POST",
        "path": "/v1/chat/completions",
    }
    told = {name: tried[name] for name in FIELDS[3:12]}
    assert told == {
        "status": 200,
        "key_id": "k1",
        "model": "gpt-4o",
        "served_model": "gpt-4o",
        "backend": "a",
        "attempts": 1,
        "stream": True,
        "outcome": "completed",
        "upstream_request_id": "up-1",
    }
    assert untried["served_model"] is None


def test_through_logging_the_same_fields_follow_the_records_own(wire: io.BytesIO) -> None:
    """With a handler of its own on the access logger, the line goes as a LogRecord."""
    handler = logging.getLogger().handlers[0]
    access_logger.addHandler(handler)
    access_logger.propagate = False
    try:
        log_access(finished(), "POST", "/v1/chat/completions")
    finally:
        access_logger.propagate = True
        access_logger.removeHandler(handler)
    [line] = lines(wire)
    assert list(line) == [*RECORD, *FIELDS, "ttfb_ms", "upstream_ms"]


@given(started=SECONDS, ttfb=SECONDS, upstream=SECONDS, total=SECONDS, now=SECONDS)
def test_milliseconds_as_the_line_always_said(
    started: float, ttfb: float, upstream: float, total: float, now: float
) -> None:
    """``(x * 1e6 + 0.5) // 1.0 / 1e3`` is ``int(x * 1e6 + 0.5) / 1000`` for any x >= 0."""
    ctx = RequestContext("chat")
    ctx.started = started
    ctx.upstream_started = started + total
    ctx.upstream_first_byte = ctx.upstream_started + ttfb
    clock = ctx.upstream_started + upstream
    stream = io.BytesIO()
    handler = LineHandler(io.TextIOWrapper(stream, encoding="utf-8"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    clocks = SimpleNamespace(monotonic=lambda: clock, time=lambda: now * 1e3)
    try:
        with mock.patch("router.logs.time", clocks):
            log_access(ctx, "POST", "/v1/chat/completions")
        handler.flush()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    line = orjson.loads(stream.getvalue())
    assert line["ts"] == int(now * 1e3 * 1000 + 0.5) / 1000
    assert line["duration_ms"] == ms(clock - ctx.started)
    assert line["ttfb_ms"] == ms(ctx.upstream_first_byte - ctx.upstream_started)
    assert line["upstream_ms"] == ms(clock - ctx.upstream_started)


@given(bits=st.integers(min_value=0, max_value=2**96 - 1))
def test_request_ids_are_24_hex_digits(bits: int) -> None:
    with mock.patch("router.context._random_bits", return_value=bits):
        assert RequestContext().request_id == f"req_{bits:024x}"


def test_request_ids_differ() -> None:
    ids = {RequestContext().request_id for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", i) for i in ids)
