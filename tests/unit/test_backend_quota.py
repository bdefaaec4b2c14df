"""A backend reading its account's headers: every answer near the limit or on a 429, one in
QUOTA_SKIP + 1 while half the quota or more is left, never with quota_headers off."""

from __future__ import annotations

from typing import Any

from balancers.health import DEFAULT_POLICY
from router.config import BackendConfig
from router.upstream.backend import QUOTA_SKIP, Backend


def backend(**extra: Any) -> Backend:
    config = BackendConfig(name="a", url="https://api.example.com/v1", **extra)
    unused: Any = None  # the HTTP client and session: never touched here
    return Backend(config, "gpt-4o", DEFAULT_POLICY, unused, unused)


def headers(remaining: int, limit: int = 600) -> dict[str, str]:
    """A bucket of ``limit`` refilled at ``limit`` a minute: full again in (limit - left) / rate."""
    reset_ms = (limit - remaining) * 60_000 // limit
    return {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": f"{reset_ms}ms",
    }


def remaining(b: Backend) -> float:
    assert b.state.quota is not None
    return b.state.quota.requests.remaining


def test_plenty_left_one_answer_in_a_few_is_read():
    b = backend()
    b.read_quota(headers(590), 10.0)
    for i in range(QUOTA_SKIP):
        b.read_quota(headers(589 - i), 10.0 + i / 1000)
    assert remaining(b) == 590  # the picks meanwhile are charged to the prediction
    b.read_quota(headers(570), 10.1)
    assert remaining(b) == 570


def test_near_the_limit_or_refused_every_answer_counts():
    b = backend()
    b.read_quota(headers(100), 10.0)  # a sixth left: read every answer
    b.read_quota(headers(99), 10.0001)
    assert remaining(b) == 99
    plenty = backend()
    plenty.read_quota(headers(590), 10.0)
    plenty.read_quota(headers(0), 10.0001, refused=True)  # a 429 is always read
    assert remaining(plenty) == 0


def test_quota_headers_off_reads_nothing():
    b = backend(quota_headers=False)
    b.read_quota(headers(0), 10.0, refused=True)
    assert b.state.quota is None
