"""Every transition of the health table, driven through BackendState's reports."""

import pytest

from balancers import TABLE, BackendState, Event, Health, HealthPolicy

POLICY = HealthPolicy(failures_to_eject=3, base_cooldown=5.0, max_cooldown=40.0)


def backend() -> BackendState:
    return BackendState("a", policy=POLICY)


def ejected(now: float = 0.0) -> BackendState:
    b = backend()
    b.on_rate_limited(now, retry_after=None)
    return b


def probing(now: float = 5.0) -> BackendState:
    b = ejected()
    b.start_probe(now)
    return b


def test_table_is_exactly_the_documented_transitions():
    assert TABLE == {
        (Health.HEALTHY, Event.SUCCESS): Health.HEALTHY,
        (Health.HEALTHY, Event.FAILURE): Health.EJECTED,
        (Health.HEALTHY, Event.RATE_LIMITED): Health.EJECTED,
        (Health.EJECTED, Event.PROBE): Health.PROBING,
        (Health.PROBING, Event.SUCCESS): Health.HEALTHY,
        (Health.PROBING, Event.FAILURE): Health.EJECTED,
        (Health.PROBING, Event.RATE_LIMITED): Health.EJECTED,
        (Health.PROBING, Event.PROBE): Health.PROBING,
    }


def test_ejects_after_n_consecutive_failures():
    b = backend()
    seen = []
    for now in (1.0, 2.0, 3.0):
        b.on_failure(now)
        seen.append((b.health, b.consecutive_failures))
    assert seen == [(Health.HEALTHY, 1), (Health.HEALTHY, 2), (Health.EJECTED, 3)]
    assert b.ejections == 1
    assert b.cooldown_until == 3.0 + 5.0


def test_success_resets_the_failure_count():
    b = backend()
    b.on_failure(1.0)
    b.on_failure(2.0)
    b.on_success(3.0)
    assert b.consecutive_failures == 0
    b.on_failure(4.0)
    b.on_failure(5.0)
    assert b.health is Health.HEALTHY


def test_rate_limited_ejects_at_once_for_retry_after():
    b = backend()
    b.on_rate_limited(10.0, retry_after=12.5)
    assert b.health is Health.EJECTED
    assert b.cooldown_until == 22.5
    assert not b.ready(22.4)
    assert b.ready(22.5)


def test_rate_limited_without_retry_after_uses_the_backoff():
    b = backend()
    b.on_rate_limited(10.0, retry_after=None)
    assert b.cooldown_until == 15.0


def test_retry_after_is_clamped_to_max_cooldown_and_zero():
    b = backend()
    b.on_rate_limited(0.0, retry_after=3600.0)
    assert b.cooldown_until == 40.0
    c = backend()
    c.on_rate_limited(7.0, retry_after=-1.0)
    assert c.cooldown_until == 7.0


def test_ejected_is_ready_only_after_cooldown():
    b = ejected(now=0.0)
    assert not b.ready(4.9)
    assert b.ready(5.0)


def test_probe_is_the_only_request_in_flight():
    b = probing(now=5.0)
    assert b.health is Health.PROBING
    assert not b.ready(5.0)
    assert not b.ready(30.0)


def test_probe_success_heals_and_resets_backoff():
    b = probing(now=5.0)
    b.on_success(6.0)
    assert b.health is Health.HEALTHY
    assert (b.ejections, b.consecutive_failures, b.cooldown_until) == (0, 0, 0.0)
    b.on_rate_limited(10.0, retry_after=None)
    assert b.cooldown_until == 15.0  # base cooldown again, not doubled


@pytest.mark.parametrize("report", ["failure", "rate_limited"])
def test_probe_failure_re_ejects_longer(report):
    b = probing(now=5.0)
    if report == "failure":
        b.on_failure(6.0)
    else:
        b.on_rate_limited(6.0, retry_after=None)
    assert b.health is Health.EJECTED
    assert b.ejections == 2
    assert b.cooldown_until == 6.0 + 10.0


def test_backoff_doubles_up_to_the_cap():
    b = backend()
    now = 0.0
    b.on_rate_limited(now, retry_after=None)
    cooldowns = [b.cooldown_until - now]
    for _ in range(5):
        now = b.cooldown_until
        b.start_probe(now)
        b.on_failure(now)
        cooldowns.append(b.cooldown_until - now)
    assert cooldowns == [5.0, 10.0, 20.0, 40.0, 40.0, 40.0]


def test_probe_rate_limited_with_retry_after_uses_it():
    b = probing(now=5.0)
    b.on_rate_limited(6.0, retry_after=2.0)
    assert b.cooldown_until == 8.0
    assert b.ejections == 2


def test_late_success_while_ejected_does_not_heal():
    b = ejected(now=0.0)
    b.on_success(1.0)
    assert b.health is Health.EJECTED
    assert b.ejections == 1


def test_late_failure_while_ejected_does_not_extend():
    b = ejected(now=0.0)
    b.on_failure(1.0)
    b.on_rate_limited(2.0, retry_after=100.0)
    assert b.health is Health.EJECTED
    assert (b.cooldown_until, b.ejections, b.consecutive_failures) == (5.0, 1, 0)


def test_probe_ignored_unless_ejected_or_probing():
    b = backend()
    b.start_probe(0.0)
    assert b.health is Health.HEALTHY


def test_lost_probe_is_replaced_after_max_cooldown():
    b = probing(now=5.0)
    assert not b.ready(44.9)
    assert b.ready(45.0)  # 5.0 + max_cooldown: the probe's outcome never came back
    b.start_probe(45.0)
    assert b.health is Health.PROBING
    assert not b.ready(45.0)


def test_abandoned_probe_frees_the_next_request_to_probe():
    b = probing(now=5.0)
    b.on_abandoned(6.0)  # the probing request's client went away: no outcome
    assert b.health is Health.PROBING
    assert b.ready(6.0)
    b.start_probe(6.0)
    assert not b.ready(6.0)


def test_abandoned_request_changes_nothing_when_not_probing():
    b = backend()
    b.on_failure(0.0)
    b.on_abandoned(1.0)
    assert (b.health, b.consecutive_failures, b.cooldown_until) == (Health.HEALTHY, 1, 0.0)


def test_huge_ejection_count_does_not_overflow():
    policy = HealthPolicy(base_cooldown=1.0, max_cooldown=300.0)
    assert policy.cooldown(5000) == 300.0
    assert policy.cooldown(1) == 1.0
    assert HealthPolicy(base_cooldown=0.0).cooldown(10) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failures_to_eject": 0},
        {"base_cooldown": -1.0},
        {"base_cooldown": 10.0, "max_cooldown": 5.0},
        {"decay": 0.0},
    ],
)
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError, match=r"must be|need"):
        HealthPolicy(**kwargs)


# --- the rest of BackendState ---


@pytest.mark.parametrize("kwargs", [{"weight": 0}, {"max_inflight": 0}])
def test_backend_rejects_nonsense(kwargs):
    with pytest.raises(ValueError, match="'a'"):
        BackendState("a", **kwargs)


def test_begin_end_and_saturation():
    b = BackendState("a", max_inflight=2)
    b.begin()
    assert not b.saturated()
    b.begin()
    assert b.saturated()
    b.end()
    b.end()
    b.end()
    assert b.inflight == 0


def test_repr_shows_live_state():
    b = backend()
    b.begin()
    b.observe(0.25, now=1.0)
    b.on_failure(1.0)
    assert repr(b) == (
        "<BackendState a healthy inflight=1/256 weight=1 peak_ewma=0.250s@1 failures=1>"
    )
    b.on_rate_limited(2.0, retry_after=3.0)
    assert "ejected" in repr(b)
    assert "until=5" in repr(b)
