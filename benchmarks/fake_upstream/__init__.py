"""A fake OpenAI-compatible upstream: a real HTTP server on loopback, scripted per test.

Run it as a process::

    python -m benchmarks.fake_upstream --host 127.0.0.1 --port 0 --name a [--api-key KEY]

It prints ``READY http://HOST:PORT`` once listening. It answers the OpenAI endpoints (models,
chat completions, embeddings, responses; JSON and SSE; the realtime WebSocket) and their Azure
paths from its input, and misbehaves on request: see ``faults`` for the fault keys and
``control`` for ``/_fake/*``.
"""

from benchmarks.fake_upstream.app import create_app
from benchmarks.fake_upstream.faults import Fault
from benchmarks.fake_upstream.state import FakeConfig, FakeState

__all__ = ["FakeConfig", "FakeState", "Fault", "create_app"]
