"""The buffered access log (``router/logs.py``) loses no line and holds none for long."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.functional.conftest import CLIENT_KEY
from tests.functional.router_process import RouterProcess

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}
REQUESTS = 40  # ~40 lines of ~450 bytes: more than one 4 KiB write, and a tail left waiting


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_right_after_requests_writes_every_access_line(
    router: RouterProcess, signum: signal.Signals
) -> None:
    with httpx.Client(base_url=router.base_url, headers=AUTH, timeout=30) as http:
        for _ in range(REQUESTS):
            assert http.post("/chat/completions", json=CHAT).status_code == 200

    assert router.stop(signum) == 0
    with router.changed:
        assert router.changed.wait_for(router.exited.is_set, 15)
    access = router.access()
    assert len(access) == REQUESTS
    assert [line["status"] for line in access] == [200] * REQUESTS
    # Order kept: every access line comes before the events that close the process.
    messages = [record.get("msg") for record in router.records()]
    assert messages.index("stopped") > max(i for i, m in enumerate(messages) if m == "request")


def test_a_lone_access_line_arrives_without_further_traffic(router: RouterProcess) -> None:
    """One request, then silence: the flush timer (100 ms) writes the line; nothing else does
    (no size threshold is reached, no event is logged, the process keeps running)."""
    with httpx.Client(base_url=router.base_url, headers=AUTH, timeout=30) as http:
        assert http.post("/chat/completions", json=CHAT).status_code == 200
    # A generous deadline for a loaded machine; the line is due within 0.1 s.
    [line] = router.wait_access(1, timeout=10)
    assert line["status"] == 200
    assert router.process.poll() is None
