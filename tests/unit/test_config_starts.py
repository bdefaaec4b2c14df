"""A config that ``check-config`` accepts always starts; one it rejects names each problem's path.

Hypothesis generates configs around the edges of every bound (zeros, negatives, inverted pairs
such as ``cooldown > max_cooldown``, bad URLs and names). Each accepted config must build the
app and run its startup and cleanup (the route table, health policies, strategies, key store);
each rejected one must report every problem as ``path: message``. This is the promise the
README makes: a config with any problem never starts a server, and a good one always does.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from balancers import STRATEGIES
from router.app import create_app
from router.config import Config, ConfigError, parse_config

_PATH = re.compile(r"^[A-Za-z_][\w.\-\[\]]*(\[\d+\])?: .+")

# Mostly valid values, so most examples get past the schema and exercise the start.
_numbers = st.one_of(st.floats(0.001, 1000.0), st.integers(-2, 5), st.sampled_from([0, 1e9]))
_counts = st.one_of(st.integers(1, 12), st.integers(-1, 0), st.sampled_from([2**31, 2**64 - 1]))


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


_timeouts = _optional(connect=_numbers, first_byte=_numbers, idle=_numbers, total=_numbers)
_backend = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "a", "b", "a", "bad name"]),
        "url": st.sampled_from(["http://127.0.0.1:9/v1", "https://x.example/v1"] * 3 + ["ftp://x"]),
    },
    optional={
        "provider": st.sampled_from(["openai", "azure", "other"]),
        "weight": _counts,
        "max_inflight": _counts,
        "timeouts": _timeouts,
        "deployment": st.just("d"),
    },
)
_model = st.fixed_dictionaries(
    {"backends": st.lists(_backend, min_size=1, max_size=2)},
    optional={
        "strategy": st.sampled_from([*sorted(STRATEGIES), "bogus"]),
        "fallbacks": st.lists(st.sampled_from(["m1", "m2", "m3"]), max_size=2),
    },
)
_limits = _optional(rpm=_counts, tpm=_counts, concurrency=_counts)
_key = st.fixed_dictionaries(
    {"name": st.just("k"), "key": st.sampled_from(["sk-long-enough-1"] * 4 + ["short"])},
    optional={"limits": _limits},
)
_configs = st.fixed_dictionaries(
    {"models": st.dictionaries(st.sampled_from(["m1", "m2"]), _model, min_size=1, max_size=2)},
    optional={
        "server": _optional(port=st.integers(-1, 70000), workers=_counts, max_body_bytes=_counts),
        "health": _optional(
            failures_to_eject=_counts,
            cooldown=_numbers,
            max_cooldown=_numbers,
            latency_decay=_numbers,
        ),
        "retry": _optional(
            attempts=_counts,
            backoff_initial=_numbers,
            backoff_max=_numbers,
            budget_percent=_numbers,
            budget_window=_numbers,
        ),
        "keys": st.lists(_key, max_size=1),
    },
)


async def _start_and_stop(config: Config) -> None:
    runner = web.AppRunner(create_app(config), handle_signals=False)
    await runner.setup()
    await runner.cleanup()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_configs)
def test_accepted_configs_start_and_rejected_ones_name_paths(raw: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as home:
        raw = {**raw, "store": {"path": str(Path(home) / "keys.sqlite3")}}
        try:
            config = parse_config(yaml.safe_dump(raw), {})
        except ConfigError as exc:
            problems = exc.problems
        else:
            event("accepted")
            asyncio.run(_start_and_stop(config))
            return
        event("rejected")
        assert problems
        for problem in problems:
            assert _PATH.match(problem), problem


def test_a_cooldown_longer_than_its_cap_is_a_config_problem() -> None:
    """The drift the property test found: it passed the schema and failed at start."""
    raw = {
        "models": {"m": {"backends": [{"name": "a", "url": "http://127.0.0.1:9/v1"}]}},
        "health": {"cooldown": 600, "max_cooldown": 300},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(raw), {})
    assert caught.value.problems == ["health: cooldown must not be longer than max_cooldown"]
