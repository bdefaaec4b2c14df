"""RetryBudget: percent of recent requests plus a floor, over a sliding window."""

import pytest

from balancers import RetryBudget


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def withdrawals(budget: RetryBudget, limit: int = 10_000) -> int:
    n = 0
    while n < limit and budget.try_withdraw():
        n += 1
    return n


def test_min_per_second_allowed_with_no_traffic():
    budget = RetryBudget(percent=0.2, window=10.0, min_per_second=1.0, clock=FakeClock())
    assert withdrawals(budget) == 10


def test_allows_percent_of_deposits():
    budget = RetryBudget(percent=0.2, window=10.0, min_per_second=0.0, clock=FakeClock())
    assert not budget.try_withdraw()
    for _ in range(100):
        budget.deposit()
    assert withdrawals(budget) == 20
    assert not budget.try_withdraw()


def test_percent_and_floor_add_up():
    clock = FakeClock()
    budget = RetryBudget(percent=0.2, window=10.0, min_per_second=1.0, clock=clock)
    for _ in range(100):
        budget.deposit()
        clock.now += 0.05  # spread over 5 s of the window
    assert withdrawals(budget) == 30


def test_refuses_beyond_budget_under_steady_load():
    clock = FakeClock()
    budget = RetryBudget(percent=0.2, window=10.0, min_per_second=1.0, clock=clock)
    allowed = 0
    for _ in range(1000):  # 100 requests/s for 10 s, each wanting a retry
        budget.deposit()
        allowed += budget.try_withdraw()
        clock.now += 0.01
    assert allowed <= 0.2 * 1000 + 1.0 * 10.0
    assert allowed >= 0.2 * 1000


def test_recovers_after_the_window_passes():
    clock = FakeClock()
    budget = RetryBudget(percent=0.2, window=10.0, min_per_second=1.0, clock=clock)
    assert withdrawals(budget) == 10
    clock.now += 5.0
    assert not budget.try_withdraw()
    clock.now += 5.0
    assert withdrawals(budget) == 10


def test_deposits_expire_with_the_window():
    clock = FakeClock()
    budget = RetryBudget(percent=0.5, window=10.0, min_per_second=0.0, clock=clock)
    for _ in range(10):
        budget.deposit()
    clock.now += 9.0
    assert budget.balance() == pytest.approx(5.0)
    clock.now += 1.0
    assert budget.balance() == 0.0
    assert not budget.try_withdraw()


def test_long_idle_gap_and_clock_step_back():
    clock = FakeClock()
    budget = RetryBudget(percent=0.2, window=10.0, min_per_second=1.0, clock=clock)
    withdrawals(budget)
    clock.now += 1e9
    assert budget.balance() == pytest.approx(10.0)
    clock.now -= 3.0  # a clock that steps back keeps counting in the current bucket
    budget.deposit()
    assert budget.balance() == pytest.approx(10.2)


def test_zero_percent_allows_only_the_floor():
    budget = RetryBudget(percent=0.0, window=10.0, min_per_second=0.5, clock=FakeClock())
    for _ in range(1000):
        budget.deposit()
    assert withdrawals(budget) == 5


@pytest.mark.parametrize(
    "kwargs",
    [{"percent": -0.1}, {"window": 0.0}, {"min_per_second": -1.0}],
)
def test_rejects_nonsense(kwargs):
    with pytest.raises(ValueError, match="must be"):
        RetryBudget(clock=FakeClock(), **kwargs)


def test_repr_shows_balance():
    budget = RetryBudget(clock=FakeClock())
    budget.try_withdraw()
    assert repr(budget) == "<RetryBudget 9.0 retries left (20% of 10s + 1/s)>"
