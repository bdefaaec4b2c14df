"""Health during an outage: the full transition table, and a simulated outage on a fake clock.

The promise: a dead backend gets one probe per cooldown, and nothing else. Every other request
is refused by the pool at once (``pick()`` is None: the router answers 503 ``no_backend``).
"""

import random

import pytest

from balancers import BackendState, Event, Health, HealthPolicy, Pool, make_strategy

POLICY = HealthPolicy(failures_to_eject=1, base_cooldown=5.0, max_cooldown=40.0)
NOW = 10.0


def in_state(health: Health) -> BackendState:
    """A backend in ``health``: ejected at t=0 (until 5), probing since t=5 (until 45)."""
    b = BackendState("a", policy=POLICY)
    if health is not Health.HEALTHY:
        b.on_failure(0.0)
    if health is Health.PROBING:
        b.start_probe(5.0)
    assert b.health is health
    return b


def fire(b: BackendState, event: Event) -> None:
    if event is Event.SUCCESS:
        b.on_success(NOW)
    elif event is Event.FAILURE:
        b.on_failure(NOW)
    elif event is Event.RATE_LIMITED:
        b.on_rate_limited(NOW, retry_after=None)
    else:
        b.start_probe(NOW)


H, E, P = Health.HEALTHY, Health.EJECTED, Health.PROBING
# (state, event) -> (next state, cooldown_until, ejections), every pair, reported at t=10.
EXPECTED = {
    (H, Event.SUCCESS): (H, 0.0, 0),
    (H, Event.FAILURE): (E, NOW + 5.0, 1),
    (H, Event.RATE_LIMITED): (E, NOW + 5.0, 1),
    (H, Event.PROBE): (H, 0.0, 0),  # ignored: a healthy backend needs no probe
    (E, Event.SUCCESS): (E, 5.0, 1),  # ignored: a late answer from before the ejection
    (E, Event.FAILURE): (E, 5.0, 1),  # ignored: the cooldown already counts the failures
    (E, Event.RATE_LIMITED): (E, 5.0, 1),
    (E, Event.PROBE): (P, NOW + 40.0, 1),  # the probe's deadline: max_cooldown
    (P, Event.SUCCESS): (H, 0.0, 0),  # healed, backoff reset
    (P, Event.FAILURE): (E, NOW + 10.0, 2),  # the cooldown doubles
    (P, Event.RATE_LIMITED): (E, NOW + 10.0, 2),
    (P, Event.PROBE): (P, NOW + 40.0, 1),  # a lost probe replaced after its deadline
}


def test_expected_covers_every_pair():
    assert set(EXPECTED) == {(state, event) for state in Health for event in Event}


@pytest.mark.parametrize(("state", "event"), list(EXPECTED), ids=lambda x: x.value)
def test_transition(state: Health, event: Event):
    b = in_state(state)
    seen: list[tuple[Health, Health]] = []
    b.observer = lambda old, new: seen.append((old, new))
    fire(b, event)
    health, until, ejections = EXPECTED[state, event]
    assert (b.health, b.cooldown_until, b.ejections) == (health, until, ejections)
    # The observer (the transitions metric) hears of each change, and of a replaced probe.
    fired = health is not state or (state, event) == (P, Event.PROBE)
    assert seen == ([(state, health)] if fired else [])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def probe_times(policy: HealthPolicy, first_ejection: float, until: float) -> list[float]:
    """When a backend ejected at ``first_ejection`` is probed, if every probe fails at once."""
    times, ejections, now = [], 1, first_ejection
    while (now := now + policy.cooldown(ejections)) < until:
        times.append(now)
        ejections += 1
    return times


@pytest.mark.parametrize("strategy", ["round-robin", "least-latency", "weighted"])
@pytest.mark.parametrize("k", [1, 3])
def test_a_full_outage_sends_only_probes(strategy: str, k: int):
    """k dead backends, 4 requests every 0.25 s for 600 s: each backend sees exactly its probes
    (one per cooldown, the cooldown doubling up to max_cooldown); every other request is
    refused without a backend, and ``retry_in`` says when the next probe is due."""
    policy = HealthPolicy(failures_to_eject=3, base_cooldown=5.0, max_cooldown=60.0)
    clock = Clock()
    backends = [BackendState(f"b{i}", policy=policy) for i in range(k)]
    pool = Pool("m", make_strategy(strategy, random.Random(1)), backends, clock=clock)
    ejections = {b.name: 0 for b in backends}
    for b in backends:
        b.observer = lambda old, new, name=b.name: ejections.__setitem__(
            name, ejections[name] + (new is Health.EJECTED)
        )
    attempts: dict[str, list[float]] = {b.name: [] for b in backends}
    refused = 0
    for step in range(4 * 2400):
        clock.now = (step // 4) * 0.25  # exact in binary: due times fall on a tick
        chosen = pool.pick()
        if chosen is None:
            refused += 1
            wait = pool.retry_in()
            assert wait is not None
            assert 0.0 < wait <= policy.max_cooldown
            continue
        attempts[chosen.name].append(clock.now)
        chosen.on_failure(clock.now)  # connection refused: the answer comes at once
    # The first 3 * k requests eject the healthy backends; then only probes get through.
    first = {name: times[2] for name, times in attempts.items()}
    for name, times in attempts.items():
        probes = probe_times(policy, first[name], 600.0)
        assert times[3:] == probes
        assert ejections[name] == 1 + len(probes)
    # 5, 10, 20, 40, 60, 60, ... seconds: 12 probes in 600 s however many requests arrive.
    assert all(len(times) - 3 in (11, 12) for times in attempts.values())
    assert refused == 4 * 2400 - sum(len(times) for times in attempts.values())
