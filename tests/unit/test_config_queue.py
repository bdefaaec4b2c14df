"""The queue and key priority settings: validated with their paths, a pool's own queue
replacing the top-level one."""

from __future__ import annotations

import textwrap

import pytest

from router.config import ConfigError, parse_config

CONFIG = """
queue: {max_wait: 10, max_depth: 100}
keys:
  - {name: web, key: sk-web-key-0123, priority: interactive}
  - {name: nightly, key: sk-nightly-key-0123, priority: batch}
  - {name: plain, key: sk-plain-key-0123}
models:
  gpt-4o:
    queue: {max_wait: 2.5, max_depth: 5}
    backends: [{name: a, url: "http://127.0.0.1:9/v1"}]
  gpt-4o-mini:
    backends: [{name: a, url: "http://127.0.0.1:9/v1"}]
"""


def test_queues_and_priorities_parse() -> None:
    config = parse_config(CONFIG, {})
    assert config.queue is not None
    assert (config.queue.max_wait, config.queue.max_depth) == (10, 100)
    own = config.models["gpt-4o"].queue
    assert own is not None
    assert (own.max_wait, own.max_depth) == (2.5, 5)
    assert config.models["gpt-4o-mini"].queue is None  # the top-level one applies
    assert [key.priority for key in config.keys] == ["interactive", "batch", "default"]


def test_no_queue_by_default() -> None:
    config = parse_config(CONFIG.replace("queue: {max_wait: 10, max_depth: 100}\n", ""), {})
    assert config.queue is None


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("max_wait: 10,", "max_wait: 0,", "queue.max_wait"),
        ("max_depth: 100", "max_depth: 0", "queue.max_depth"),
        ("max_depth: 5}", "max_depth: 5, size: 3}", "models.gpt-4o.queue.size"),
        ("priority: batch", "priority: urgent", "keys[1].priority"),
    ],
)
def test_bad_values_are_reported_with_their_path(old: str, new: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(CONFIG.replace(old, new)), {})
    assert any(problem.startswith(f"{path}:") for problem in caught.value.problems), (
        caught.value.problems
    )
