"""Reading an account's x-ratelimit-* headers: Go durations, partial (Azure) and bad values."""

import math

from hypothesis import given
from hypothesis import strategies as st

from balancers.quota import Report
from router.limits import format_duration
from router.upstream.ratelimit import parse_duration, read


def test_go_durations_as_openai_sends_them():
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("12ms") == 0.012
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("0s") == 0.0
    assert parse_duration("1h2m3s") == 3723.0
    assert math.isclose(parse_duration("1.5µs") or 0, 1.5e-6)
    assert parse_duration("2") == 2.0  # bare seconds, as some proxies write it


def test_unreadable_durations_are_none():
    for text in ("", "s", "5x", "-1s", "1.2.3s", "ms5", "inf", "nan", "1s2"):
        assert parse_duration(text) is None, text


@given(st.floats(min_value=0, max_value=100 * 3600, allow_nan=False))
def test_reads_back_what_go_writes(seconds: float):
    """Whatever Go's Duration.String() prints (the router's own formatter), reads back to the
    same nanosecond."""
    parsed = parse_duration(format_duration(seconds))
    assert parsed is not None
    assert abs(parsed - round(seconds * 1e9) / 1e9) <= 1e-9 * max(1.0, seconds)


@given(st.text(max_size=12))
def test_never_raises(text: str):
    value = parse_duration(text)
    assert value is None or (value >= 0 and math.isfinite(value))


def test_no_headers_no_report():
    assert read({"content-type": "application/json"}) is None


def test_openai_headers():
    headers = {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "599",
        "x-ratelimit-reset-requests": "100ms",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "9990",
        "x-ratelimit-reset-tokens": "60ms",
    }
    assert read(headers) == (Report(599, 0.1, 600), Report(9990, 0.06, 10000))


def test_azure_sends_only_remaining():
    headers = {"x-ratelimit-remaining-requests": "7", "x-ratelimit-remaining-tokens": "80"}
    assert read(headers) == (Report(7, None, None), Report(80, None, None))


def test_a_bad_value_drops_only_that_kind():
    headers = {"x-ratelimit-remaining-requests": "many", "x-ratelimit-remaining-tokens": "80"}
    assert read(headers) == (None, Report(80, None, None))
