"""A fake OpenAI-compatible upstream: a real HTTP server on loopback, scripted per test.

Run it as a process::

    python -m benchmarks.fake_upstream --host 127.0.0.1 --port 0 --name a [--api-key KEY]

It prints ``READY http://HOST:PORT`` once listening. It answers the OpenAI endpoints (models,
chat completions, embeddings, responses; JSON and SSE; the realtime WebSocket) and their Azure
paths from its input, and misbehaves on request: see ``faults`` for the fault keys and
``control`` for ``/_fake/*``.

It can also play one provider account, each part off (or empty) unless asked for, so that tests
see the fake as before by default:

- a quota (``--rpm``, ``--tpm``, ``--quota-headers``; ``/_fake/quota``): ``x-ratelimit-*``
  headers and OpenAI's 429s, see ``quota``;
- stored responses and conversations held by this instance only (``--store-limit``,
  ``--background-seconds``; ``/_fake/store``): ``GET``/``DELETE``/``cancel``/``input_items`` of
  ``/v1/responses/{id}``, ``previous_response_id``, ``/v1/conversations`` and its items, see
  ``store``, ``stored`` and ``conversations``;
- a prompt prefix cache (``--cache-blocks``, ``--cache-min-tokens``, ``--cache-block-tokens``;
  ``/_fake/prefix_cache``): ``cached_tokens`` in the usage, see ``prefix_cache``.

``/_fake/stats`` counts refusals (``refused_429``) and prompt, cached and completion tokens.
"""

from benchmarks.fake_upstream.app import create_app
from benchmarks.fake_upstream.faults import Fault
from benchmarks.fake_upstream.state import FakeConfig, FakeState

__all__ = ["FakeConfig", "FakeState", "Fault", "create_app"]
