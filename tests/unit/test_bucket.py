"""The bucket math: the shared table of cases, and properties no single case shows."""

import pytest

from router.limits import bucket
from router.limits.bucket import BucketSpec, BucketState
from tests.bucket_cases import CASES, IDS, assert_close, initial

MINUTE = BucketSpec(60)  # 1 token per second


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_table(case):
    spec = BucketSpec(case["capacity"])
    if case["op"] == "take":
        allowed, state, retry_after = bucket.try_take(
            initial(case), spec, case["now"], case["amount"]
        )
        assert allowed is case["allowed"]
        assert_close(retry_after, case["retry_after"])
    else:
        state = bucket.settle(initial(case), spec, case["now"], case["amount"])
    assert_close(state.level, case["level"])
    assert_close(state.stamp, case["stamp"])


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        (BucketState(60, 0), 0, 0.0),
        (BucketState(0, 0), 0, 60.0),
        (BucketState(45, 10), 10, 15.0),
        (BucketState(-30, 0), 0, 90.0),  # a debt is waited out too
        (BucketState(59, 100), 95, 6.0),  # a stamp ahead of now (clock went back) adds its lead
        (BucketState(70, 0), 0, 0.0),  # above a lowered capacity: already full
    ],
)
def test_time_to_full(state, now, expected):
    assert bucket.time_to_full(state, MINUTE, now) == pytest.approx(expected)


def test_zero_limit_is_always_full_and_never_refills():
    zero = BucketSpec(0)
    assert bucket.time_to_full(BucketState(0, 0), zero, 0) == 0.0
    assert bucket.try_take(BucketState(-1, 0), zero, 100, 0) == (False, BucketState(-1, 100), None)


def test_retry_after_is_exactly_enough():
    state = BucketState(0.4, 0)
    refused = bucket.try_take(state, MINUTE, 0, 1)
    assert refused.retry_after is not None
    assert bucket.try_take(state, MINUTE, refused.retry_after, 1).allowed
    assert not bucket.try_take(state, MINUTE, refused.retry_after * 0.99, 1).allowed


def test_any_second_admits_at_most_capacity_plus_refill():
    """Hammered every 10 ms for 5 minutes from full: one burst of 60 at the start, then the
    refill rate, with no second burst at any minute mark (a fixed window allows 120 at once)."""
    state = bucket.full(MINUTE, 0)
    admitted: list[float] = []
    for step in range(30_000):
        now = step / 100
        take = bucket.try_take(state, MINUTE, now, 1)
        state = take.state
        if take.allowed:
            admitted.append(now)
    assert len(admitted) == 60 + 299  # the burst, then 1/s for the 299.99 s that follow
    for start in range(1, 299):
        in_second = [t for t in admitted if start <= t < start + 1]
        assert len(in_second) <= 1 + 1  # refill of 1/s, plus one carried over the boundary


def test_refused_take_takes_nothing():
    state = BucketState(0.5, 0)
    refused = bucket.try_take(state, MINUTE, 0, 1)
    assert refused.state == state


def test_settle_never_fills_above_capacity():
    assert bucket.settle(BucketState(60, 0), MINUTE, 0, -1_000_000).level == 60
