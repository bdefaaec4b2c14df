"""A router over two fake upstreams, all real processes, for the edge's reliability tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.functional.conftest import (
    CLIENT_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    make_config,
    two_backend_models,
)
from tests.functional.fake_process import fake_upstream
from tests.functional.router_process import RouterProcess, router_process

ADMIN_KEY = "sk-admin-edge-reliability-0123456789"
METRICS_TOKEN = "metrics-edge-token-0123456789"
SECRETS = [CLIENT_KEY, ADMIN_KEY, METRICS_TOKEN, UPSTREAM_KEY_A, UPSTREAM_KEY_B]


@dataclass
class Edge:
    router: RouterProcess
    fakes: tuple[Fake, Fake]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.router.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)


@contextmanager
def edge_env(directory: Path, **server: Any) -> Iterator[Edge]:
    """Two fakes, and a router over them with the admin key, a metrics token and ``server``."""
    with ExitStack() as stack:
        a = Fake("fake-a", stack.enter_context(fake_upstream("fake-a", api_key=UPSTREAM_KEY_A)))
        b = Fake("fake-b", stack.enter_context(fake_upstream("fake-b", api_key=UPSTREAM_KEY_B)))
        for fake in (a, b):
            stack.callback(fake.http.close)
        config = make_config(
            two_backend_models(a, b),
            admin={"key": ADMIN_KEY},
            metrics={"token": METRICS_TOKEN},
            server={"host": "127.0.0.1", "port": 0, "drain_seconds": 5, **server},
        )
        yield Edge(stack.enter_context(router_process(config, directory)), (a, b))


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` s pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling with a deadline
    return True
