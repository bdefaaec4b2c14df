"""The fake upstream's account parts as pure logic: quota buckets on an injected clock, Go
durations, the prefix cache's blocks and its bound."""

from __future__ import annotations

import pytest

from benchmarks.fake_upstream.prefix_cache import PrefixCache
from benchmarks.fake_upstream.quota import Quota, go_duration
from benchmarks.fake_upstream.wire import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.012, "12ms"),
        (0.0121, "13ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.25, "59.25s"),
        (360, "6m0s"),
        (61.5, "1m1.5s"),
        (3723, "1h2m3s"),
        (3 / (10_000 / 60), "18ms"),
    ],
)
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_requests_bucket_refills_at_limit_per_minute():
    clock = Clock()
    quota = Quota(rpm=2, tpm=None, clock=clock)
    assert quota.admit("m", "org-x", 5)["x-ratelimit-remaining-requests"] == "1"
    headers = quota.admit("m", "org-x", 5)
    assert (headers["x-ratelimit-remaining-requests"], headers["x-ratelimit-reset-requests"]) == (
        "0",
        "1m0s",
    )
    with pytest.raises(ApiError) as refused:
        quota.admit("m", "org-x", 5)
    assert (refused.value.status, refused.value.type, refused.value.code) == (
        429,
        "requests",
        "rate_limit_exceeded",
    )
    assert "Limit 2, Used 2, Requested 1. Please try again in 30s." in refused.value.message
    assert refused.value.headers["retry-after"] == "30"
    assert refused.value.headers["retry-after-ms"] == "30000"
    clock.now += 29.9
    with pytest.raises(ApiError):
        quota.admit("m", "org-x", 5)
    clock.now += 0.2
    assert quota.admit("m", "org-x", 5)["x-ratelimit-remaining-requests"] == "0"


def test_tokens_charged_at_admission_and_settled_from_usage():
    clock = Clock()
    quota = Quota(rpm=None, tpm=60, clock=clock)  # one token a second
    assert quota.admit("m", "org-x", 10)["x-ratelimit-remaining-tokens"] == "50"
    quota.settle(45)  # the answer used 45 more than the estimate
    with pytest.raises(ApiError) as refused:
        quota.admit("m", "org-x", 10)
    assert refused.value.type == "tokens"
    assert "on tokens per min (TPM): Limit 60, Used 55, Requested 10." in refused.value.message
    assert "Please try again in 5s." in refused.value.message
    clock.now += 5
    assert quota.admit("m", "org-x", 10)["x-ratelimit-remaining-tokens"] == "0"
    quota.settle(-100)  # a refund never overfills the bucket
    assert quota.snapshot()["remaining_tokens"] == 60


def test_request_larger_than_the_limit_is_refused_whatever_the_wait():
    quota = Quota(rpm=None, tpm=10, clock=Clock())
    with pytest.raises(ApiError) as refused:
        quota.admit("gpt-4o", "org-x", 11)
    assert refused.value.message.startswith("Request too large for gpt-4o in organization org-x")


@pytest.mark.parametrize(
    ("mode", "names"),
    [
        (
            "openai",
            {
                f"x-ratelimit-{what}-{kind}"
                for what in ("limit", "remaining", "reset")
                for kind in ("requests", "tokens")
            },
        ),
        ("azure", {"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"}),
        ("none", set()),
    ],
)
def test_header_modes(mode, names):
    quota = Quota(rpm=10, tpm=100, headers=mode, clock=Clock())
    assert set(quota.admit("m", "org-x", 1)) == names


def words(prefix: str, count: int) -> list[str]:
    return [f"user:{prefix}{i}" for i in range(count)]


def test_prefix_cache_counts_whole_leading_blocks_past_the_minimum():
    cache = PrefixCache(capacity=100, min_tokens=8, block_tokens=4)
    system = words("s", 10)  # two full blocks and a half
    assert cache.lookup_and_insert([*system, "user:a"]) == 0
    assert cache.lookup_and_insert([*system, "user:b"]) == 8
    assert cache.lookup_and_insert(words("t", 10)) == 0
    assert cache.lookup_and_insert(system[:6]) == 0  # one block matches: under the minimum
    changed = ["user:x", *system[1:]]
    assert cache.lookup_and_insert(changed) == 0  # a change in block 0 misses every block


def test_prefix_cache_forgets_least_recently_used_blocks():
    cache = PrefixCache(capacity=2, min_tokens=4, block_tokens=4)
    first, second = words("a", 8), words("b", 8)
    cache.lookup_and_insert(first)
    cache.lookup_and_insert(second)
    assert len(cache) == 2
    assert cache.lookup_and_insert(first) == 0
    assert cache.lookup_and_insert(first) == 8


def test_azure_spreads_requests_over_ten_second_periods():
    clock = Clock()
    quota = Quota(rpm=60, tpm=None, headers="azure", clock=clock)
    for left in range(9, -1, -1):
        assert quota.admit("m", "org-x", 1) == {"x-ratelimit-remaining-requests": str(left)}
    with pytest.raises(ApiError) as refused:
        quota.admit("m", "org-x", 1)
    assert "Limit 60, Used 10, Requested 1. Please try again in 1s." in refused.value.message
    clock.now += 1
    assert quota.admit("m", "org-x", 1) == {"x-ratelimit-remaining-requests": "0"}


def test_a_window_of_one_second_holds_a_second_of_quota():
    """``window=1``: an rpm=600 account takes 10 at once, then 10 a second; its headers keep
    the per-minute limit and say when the bucket is full again."""
    clock = Clock()
    quota = Quota(rpm=600, tpm=None, clock=clock, window=1.0)
    for _ in range(10):
        headers = quota.admit("gpt-4o", "org", 0)
    assert headers["x-ratelimit-limit-requests"] == "600"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    with pytest.raises(ApiError) as refused:
        quota.admit("gpt-4o", "org", 0)
    assert refused.value.headers["retry-after-ms"] == "100"
    clock.now += 0.1001  # one request's worth (and a hair for float rounding)
    assert quota.admit("gpt-4o", "org", 0)["x-ratelimit-remaining-requests"] == "0"
