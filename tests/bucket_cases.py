"""The bucket math as a table: tests/unit/test_bucket.py runs it through bucket.py and
tests/functional/test_limiters.py through admit.lua and settle.lua; both must agree.

Each case starts from ``state`` ((level, stamp), or None for a bucket never used), acts at
``now`` with ``op`` "take" (a cost) or "settle" (a delta), and expects the outcome:
``allowed`` and ``retry_after`` for a take, and the bucket's ``level`` and ``stamp`` after.
A capacity of 60 refills 1 token/s and 600 refills 10/s, so the numbers read plainly.
"""

from __future__ import annotations

from typing import Any

import pytest

from router.limits.bucket import BucketSpec, BucketState, full

Case = dict[str, Any]


TAKE = ("name", "capacity", "state", "now", "amount", "allowed", "level", "stamp", "retry_after")
SETTLE = ("name", "capacity", "state", "now", "amount", "level", "stamp")

# fmt: off
TAKES = [
    # name                         cap  state        now    cost  allowed level  stamp  retry
    ("unused bucket is full",      60,  None,        1000,  1,    True,   59,    1000,  None),
    ("burst up to capacity",       60,  (60, 0),     0,     60,   True,   0,     0,     None),
    ("exact fit",                  60,  (1, 0),      0,     1,    True,   0,     0,     None),
    ("one past the burst waits",   60,  (0, 0),      0,     1,    False,  0,     0,     1),
    ("partial refill waits",       60,  (0, 0),      0.25,  1,    False,  0.25,  0.25,  0.75),
    ("refill is continuous",       60,  (0, 0),      30,    1,    True,   29,    30,    None),
    # Emptied just before the minute mark: a fixed window would reset at 60 and allow another
    # 60 at once; the bucket holds only what 0.75 s refilled.
    ("no double burst at an edge", 60,  (0, 59.5),   60.25, 2,    False,  0.75,  60.25, 1.25),
    ("long idle refills to full",  60,  (10, 0),     86400, 1,    True,   59,    86400, None),
    ("lowered limit caps level",   60,  (100, 0),    0,     1,    True,   59,    0,     None),
    ("tokens refill at cap/60",    600, (0, 0),      1.5,   10,   True,   5,     1.5,   None),
    ("tokens wait scaled by rate", 600, (0, 0),      0,     100,  False,  0,     0,     10),
    ("cost above capacity",        60,  (60, 0),     0,     61,   False,  60,    0,     None),
    ("cost above capacity, new",   600, None,        5,     601,  False,  600,   5,     None),
    ("zero limit refuses forever", 0,   None,        0,     1,    False,  0,     0,     None),
    ("zero limit refuses even 0",  0,   None,        3,     0,    False,  0,     3,     None),
    ("clock backwards, allowed",   60,  (10, 100),   90,    1,    True,   9,     100,   None),
    ("clock backwards, refused",   60,  (0.5, 100),  40,    1,    False,  0.5,   100,   0.5),
    ("debt delays the next one",   60,  (-15, 0),    0,     1,    False,  -15,   0,     16),
    ("a free request waits debt",  60,  (-1, 0),     0,     0,    False,  -1,    0,     1),
    ("debt repaid by refill",      60,  (-15, 0),    20,    1,    True,   4,     20,    None),
    ("deep debt, long idle",       60,  (-1000, 0),  86400, 1,    True,   59,    86400, None),
]

SETTLES = [
    # name                         cap  state        now    delta         level  stamp
    ("refund",                     60,  (10, 0),     0,     -20,          30,    0),
    ("refund capped",              60,  (50, 0),     0,     -20,          60,    0),
    ("refund after refill",        60,  (30, 0),     20,    -15,          60,    20),
    ("extra charge: debt",         60,  (5, 0),      0,     20,           -15,   0),
    ("charge on an unused one",    60,  None,        7,     100,          -40,   7),
    ("refund on an unused one",    60,  None,        7,     -5,           60,    7),
    ("clock backwards",            60,  (10, 100),   90,    5,            5,     100),
]
# fmt: on

CASES: list[Case] = [{"op": "take", **dict(zip(TAKE, row, strict=True))} for row in TAKES] + [
    {"op": "settle", "allowed": None, "retry_after": None, **dict(zip(SETTLE, row, strict=True))}
    for row in SETTLES
]

IDS = [case["name"] for case in CASES]


def initial(case: Case) -> BucketState:
    """The case's starting state (a bucket never used is full at ``now``)."""
    if case["state"] is None:
        return full(BucketSpec(case["capacity"]), case["now"])
    level, stamp = case["state"]
    return BucketState(level, stamp)


def assert_close(actual: float | None, expected: float | None) -> None:
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, abs=1e-9)
