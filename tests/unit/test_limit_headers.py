"""Go-style durations and OpenAI's x-ratelimit-* headers."""

import pytest

from router.limits import Limits, format_duration, rate_limit_headers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1e-9, "1ns"),
        (1.5e-6, "1.5µs"),
        (0.001, "1ms"),
        (0.012, "12ms"),
        (0.0125, "12.5ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (59.999, "59.999s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3661, "1h1m1s"),
        (86400, "24h0m0s"),
        (-1.5, "-1.5s"),
        (-0.012, "-12ms"),
        (1e-10, "0s"),  # below a nanosecond: Go durations are whole nanoseconds
    ],
)
def test_format_duration_matches_go(seconds, text):
    assert format_duration(seconds) == text


def test_headers_for_both_limits():
    headers = rate_limit_headers(Limits(rpm=60, tpm=150_000), 59.7, 0.3, 149_000.0, 0.4)
    assert headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "300ms",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": "149000",
        "x-ratelimit-reset-tokens": "400ms",
    }


def test_only_the_limits_that_are_set():
    assert rate_limit_headers(Limits(tpm=1000), 0, 0, 10, 59.4) == {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "10",
        "x-ratelimit-reset-tokens": "59.4s",
    }
    assert rate_limit_headers(Limits(concurrency=3), 0, 0, 0, 0) == {}


@pytest.mark.parametrize(
    ("remaining", "reset", "header_remaining", "header_reset"),
    [
        (-120.5, 180.5, "0", "3m0.5s"),  # a debt reads as nothing left
        (0.999, 0.012, "0", "12ms"),  # floor; float noise adds no millisecond
        (5.0, 0.0004, "5", "1ms"),  # rounded up: never "0s" before the bucket is full
        (10.0, 0.0, "10", "0s"),
        (10.0, 12.0001, "10", "12.001s"),
    ],
)
def test_remaining_and_reset_rounding(remaining, reset, header_remaining, header_reset):
    headers = rate_limit_headers(Limits(rpm=10), remaining, reset, 0, 0)
    assert headers["x-ratelimit-remaining-requests"] == header_remaining
    assert headers["x-ratelimit-reset-requests"] == header_reset


def test_limits_validate_and_report_empty():
    assert Limits().empty
    assert not Limits(concurrency=0).empty
    with pytest.raises(ValueError, match="rpm"):
        Limits(rpm=-1)
