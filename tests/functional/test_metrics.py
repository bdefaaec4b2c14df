"""``/metrics``: every request and stream counted exactly once, however it ended.

Each test reads ``/metrics`` before and after a known mix of traffic and checks that the
counters and histogram counts moved by exactly that much. The access log is the barrier: the
router writes a request's access line and records its metrics in the same synchronous step, so
once ``wait_access`` sees the lines, the metrics are in.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.functional.conftest import (
    CLIENT_KEY,
    LIMITED_KEY,
    UPSTREAM_KEY_A,
    UPSTREAM_KEY_B,
    Fake,
    RouterFactory,
    backend,
    make_config,
    two_backend_models,
)
from tests.functional.realtime_client import converse
from tests.functional.realtime_client import sdk as realtime_sdk
from tests.functional.router_process import RouterProcess
from tests.functional.scrape import Reading, moved, scrape

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]
REQUESTS = "switchyard_requests_total"


def one_pool_config(fake: Fake, **sections: Any) -> dict[str, Any]:
    """gpt-4o on one backend (an upstream error reaches the client) and a limited key."""
    timeouts = {"first_byte": 10, "idle": 0.6}  # a stream silent for longer ends as a timeout
    pool = {"backends": [backend(fake, UPSTREAM_KEY_A, timeouts=timeouts)]}
    config = make_config({"gpt-4o": pool, "gpt-4o-mini": pool}, **sections)
    config["keys"][1]["limits"] = {"rpm": 3}
    return config


def metrics_of(router: RouterProcess) -> Reading:
    return scrape(f"{router.url}/metrics")


def api_access(router: RouterProcess, count: int = 0) -> list[dict[str, Any]]:
    """The access lines of everything but the scrapes, once there are ``count``. A line is
    written right after its answer is sent, so it can trail the client by a moment."""
    with router.changed:
        router.changed.wait_for(lambda: len(_api_lines(router)) >= count, 10)
    return _api_lines(router)


def _api_lines(router: RouterProcess) -> list[dict[str, Any]]:
    return [line for line in router.access() if line["path"] != "/metrics"]


@pytest.fixture
def sdk(start_router: RouterFactory, fake_a: Fake) -> Iterator[tuple[RouterProcess, Any]]:
    router = start_router(one_pool_config(fake_a))
    clients = {
        key: openai.OpenAI(base_url=router.base_url, api_key=key, max_retries=0)
        for key in (CLIENT_KEY, LIMITED_KEY)
    }
    yield router, clients
    for client in clients.values():
        client.close()


def test_a_known_mix_of_traffic_is_counted_exactly(
    sdk: tuple[RouterProcess, dict[str, openai.OpenAI]], fake_a: Fake
) -> None:
    router, clients = sdk
    before = metrics_of(router)
    sent = len(api_access(router))
    output_tokens = _send_the_mix(clients[CLIENT_KEY], clients[LIMITED_KEY], fake_a)
    assert len(api_access(router, sent + 17)) == sent + 17
    after = metrics_of(router)
    _check_requests(before, after)
    _check_streams(before, after)
    tokens_out = moved(before, after, "switchyard_tokens_total", type="output")
    assert tokens_out == output_tokens
    decisions = "switchyard_rate_limit_decisions_total"
    assert moved(before, after, decisions, kind="requests", outcome="allowed") == 3
    assert moved(before, after, decisions, kind="requests", outcome="refused") == 2
    assert after.sum("switchyard_inflight_requests") == 0
    assert after.sum("switchyard_open_streams") == 0


def _send_the_mix(client: openai.OpenAI, limited: openai.OpenAI, fake_a: Fake) -> int:
    """17 requests: 16 chats that end every way a chat can end, and a models list.
    Returns the output tokens the answers reported (or, for streams, carried)."""
    output_tokens = 0
    for _ in range(3):  # JSON, answered
        completion = client.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert completion.usage is not None
        output_tokens += completion.usage.completion_tokens
    for _ in range(2):  # streams, completed; the client did not ask for usage
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
        assert all(chunk.choices for chunk in chunks), "the usage chunk the router asked for"
        output_tokens += sum(1 for c in chunks if c.choices[0].delta.content)
    fake_a.fail_next({"status": 500})  # an upstream error: 502 (one backend, nothing to retry)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    fake_a.fail_next({"cut_after": 3})  # a stream the upstream breaks off
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    _disconnect_mid_stream(client, fake_a)
    fake_a.fail_next({"chunk_delay": 1.5})  # longer than the backend's idle timeout
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    for _ in range(3):  # the limited key: 3 admitted, then refused
        answer = limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert answer.usage is not None
        output_tokens += answer.usage.completion_tokens
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.NotFoundError):  # a client's model never becomes a label
        client.chat.completions.create(model="no-such-model-xyz", messages=HELLO)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="", messages=HELLO)
    client.models.list()
    return output_tokens


def _check_requests(before: Reading, after: Reading) -> None:
    def requests(**labels: str) -> float:
        return moved(before, after, REQUESTS, **labels)

    assert requests() == 17
    assert requests(endpoint="chat") == 16
    assert requests(endpoint="models") == 1
    assert requests(endpoint="chat", code="2xx", stream="false") == 6
    assert requests(endpoint="chat", code="5xx", stream="false") == 1
    assert requests(endpoint="chat", code="4xx", stream="false") == 4  # 2x429, 404, 400
    assert requests(endpoint="chat", stream="true") == 5
    assert requests(endpoint="chat", model="gpt-4o-mini", code="4xx") == 2
    assert requests(endpoint="chat", model="", backend="") == 2
    assert "no-such-model-xyz" not in after.text
    for histogram in ("switchyard_request_duration_seconds", "switchyard_overhead_seconds"):
        assert moved(before, after, f"{histogram}_count") == 17
    # Every request that reached an upstream: 6 + 5 streams + the 502.
    assert moved(before, after, "switchyard_upstream_duration_seconds_count") == 12


def _check_streams(before: Reading, after: Reading) -> None:
    def streams(outcome: str) -> float:
        return moved(before, after, "switchyard_streams_total", outcome=outcome)

    assert (streams("completed"), streams("upstream_error")) == (2, 1)
    assert streams("client_disconnect") == 1
    assert streams("timeout") == 1
    assert moved(before, after, "switchyard_stream_duration_seconds_count") == 5
    # Output reached the client in the 2 completed streams, the cut one and the abandoned one.
    assert moved(before, after, "switchyard_time_to_first_token_seconds_count") == 4
    # Time per output token needs the usage: the completed streams report it.
    assert moved(before, after, "switchyard_time_per_output_token_seconds_count") == 2


def _disconnect_mid_stream(client: openai.OpenAI, fake: Fake) -> None:
    """Read up to the first output, then go away while the upstream is still writing."""
    fake.fail_next({"chunk_delay": 0.3})
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_body={"fake": {"words": 40}}
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    assert fake.wait_cancelled(1, timeout=5)


def test_retries_fallbacks_and_health_transitions(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    models = two_backend_models(fake_a, fake_b)
    models["gpt-4o-mini"] = {"backends": [backend(fake_b, UPSTREAM_KEY_B)]}
    models["gpt-4o"]["fallbacks"] = ["gpt-4o-mini"]
    config = make_config(models, health={"failures_to_eject": 1, "cooldown": 60})
    router = start_router(config)
    before = metrics_of(router)
    with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
        fake_a.fail_next({"status": 503})
        fake_b.fail_next({"status": 503})
        # Both backends of gpt-4o fail once (the first try and its retry) and are ejected;
        # the request falls back to gpt-4o-mini, whose backend b has a health of its own.
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    router.wait_access(1)
    after = metrics_of(router)
    assert moved(before, after, "switchyard_retries_total", model="gpt-4o") == 1
    assert moved(before, after, "switchyard_retries_total", reason="status_5xx") == 1
    fallback = {"model": "gpt-4o", "fallback": "gpt-4o-mini", "reason": "status_5xx"}
    assert moved(before, after, "switchyard_fallbacks_total", **fallback) == 1

    def transitions(model: str, name: str, transition: str) -> float:
        labels = {"model": model, "backend": name, "transition": transition}
        return moved(before, after, "switchyard_backend_transitions_total", **labels)

    assert transitions("gpt-4o", fake_a.name, "ejection") == 1
    assert transitions("gpt-4o", fake_b.name, "ejection") == 1
    assert transitions("gpt-4o-mini", fake_b.name, "probe") == 0  # its own state: healthy
    health = "switchyard_backend_health"
    assert after.sum(health, model="gpt-4o", backend=fake_a.name, state="ejected") == 1
    assert after.sum(health, model="gpt-4o", backend=fake_a.name, state="healthy") == 0
    assert after.sum(health, model="gpt-4o-mini", backend=fake_b.name, state="healthy") == 1
    assert moved(before, after, REQUESTS, model="gpt-4o-mini", backend=fake_b.name) == 1


def test_no_secret_in_metrics_and_key_series_only_when_asked(
    start_router: RouterFactory, fake_a: Fake, fake_b: Fake
) -> None:
    models = two_backend_models(fake_a, fake_b)
    plain = start_router(make_config(models))
    keyed = start_router(make_config(models, metrics={"key_labels": True}))
    for router in (plain, keyed):
        with openai.OpenAI(base_url=router.base_url, api_key=CLIENT_KEY, max_retries=0) as sdk:
            sdk.chat.completions.create(model="gpt-4o", messages=HELLO)
        router.wait_access(1)
    plain_text, keyed_reading = metrics_of(plain).text, metrics_of(keyed)
    assert "switchyard_key_" not in plain_text
    assert keyed_reading.sum("switchyard_key_requests_total", key_id="cfg-test", code="2xx") == 1
    assert keyed_reading.sum("switchyard_key_tokens_total", key_id="cfg-test") > 0
    for text in (plain_text, keyed_reading.text):
        for secret in (CLIENT_KEY, UPSTREAM_KEY_A, UPSTREAM_KEY_B):
            assert secret not in text


def test_metrics_need_no_client_key_but_their_own_token(
    start_router: RouterFactory, fake_a: Fake
) -> None:
    open_router = start_router(one_pool_config(fake_a))
    assert httpx.get(f"{open_router.url}/metrics").status_code == 200
    token = "metrics-token-0123456789"
    guarded = start_router(one_pool_config(fake_a, metrics={"token": token}))
    refused = httpx.get(f"{guarded.url}/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "invalid_request_error"
    wrong = httpx.get(f"{guarded.url}/metrics", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    assert wrong.status_code == 401
    assert "switchyard_backend_health" in scrape(f"{guarded.url}/metrics", token=token).names()


def test_openmetrics_when_asked(start_router: RouterFactory, fake_a: Fake) -> None:
    router = start_router(one_pool_config(fake_a))
    accept = {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
    response = httpx.get(f"{router.url}/metrics", headers=accept)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    plain = httpx.get(f"{router.url}/metrics")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_metrics_on_their_own_port(start_router: RouterFactory, fake_a: Fake) -> None:
    router = start_router(one_pool_config(fake_a, metrics={"port": 0}))
    with router.changed:
        router.changed.wait_for(lambda: _metrics_url(router) is not None, 10)
    url = _metrics_url(router)
    assert url is not None
    assert "switchyard_backend_health" in scrape(url).names()
    assert httpx.get(f"{router.url}/metrics").status_code == 404  # not on the API port


def _metrics_url(router: RouterProcess) -> str | None:
    for record in router.records():
        if record.get("msg") == "metrics listening":
            return str(record["url"])
    return None


def test_several_workers_sum_right(start_router: RouterFactory, fake_a: Fake) -> None:
    config = one_pool_config(fake_a, server={"workers": 2})
    router = start_router(config)
    for _ in range(40):  # a new connection each: the kernel spreads them over the workers
        response = httpx.post(
            f"{router.base_url}/chat/completions",
            json={"model": "gpt-4o", "messages": HELLO},
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        )
        assert response.status_code == 200
    lines = router.wait_access(40)
    assert len({line["pid"] for line in lines}) == 2, "both workers served requests"
    for _ in range(6):  # whichever worker answers the scrape, it reports both
        reading = metrics_of(router)
        assert reading.sum(REQUESTS, endpoint="chat", code="2xx") == 40
        assert reading.sum("switchyard_request_duration_seconds_count", endpoint="chat") == 40
        assert reading.sum("switchyard_inflight_requests") == 0


async def test_realtime_sessions_are_counted(start_router: RouterFactory, fake_a: Fake) -> None:
    router = start_router(one_pool_config(fake_a))
    before = await asyncio.to_thread(metrics_of, router)
    async with realtime_sdk(router) as client:
        async with client.realtime.connect(model="gpt-4o") as connection:
            assert (await connection.recv()).type == "session.created"
            exchange = await converse(connection, "Hello there")
            during = await asyncio.to_thread(metrics_of, router)
            assert during.sum("switchyard_realtime_sessions_open", backend=fake_a.name) == 1
        lines = await asyncio.to_thread(router.wait_access, 3)  # two scrapes and the session
    after = await asyncio.to_thread(metrics_of, router)
    (line,) = [line for line in lines if line["path"] == "/v1/realtime"]
    assert after.sum("switchyard_realtime_sessions_open") == 0
    labels = {"model": "gpt-4o", "backend": fake_a.name}
    assert moved(before, after, REQUESTS, endpoint="realtime", code="1xx", **labels) == 1
    ended = "switchyard_realtime_sessions_total"
    assert moved(before, after, ended, outcome="completed", **labels) == 1
    assert moved(before, after, ended) == 1
    assert moved(before, after, "switchyard_realtime_session_duration_seconds_count") == 1
    frames, size = "switchyard_realtime_frames_total", "switchyard_realtime_bytes_total"
    assert moved(before, after, frames, direction="client") == line["client_frames"]
    assert moved(before, after, frames, direction="upstream") == line["upstream_frames"]
    assert moved(before, after, size, direction="upstream") == line["upstream_bytes"]
    tokens = "switchyard_tokens_total"
    assert moved(before, after, tokens, **labels) == exchange.total_tokens
    assert moved(before, after, "switchyard_streams_total") == 0  # a session is no SSE stream


def test_a_client_leaving_after_the_end_of_a_stream_completed_it(
    sdk: tuple[RouterProcess, dict[str, openai.OpenAI]], fake_a: Fake
) -> None:
    """The SDK closes the connection once it reads [DONE]; the upstream still holds the response
    open. The stream was delivered whole: completed and 200, not a disconnect."""
    router, clients = sdk
    before = metrics_of(router)
    sent = len(api_access(router))
    fake_a.fail_next({"linger": 5})
    chunks = list(
        clients[CLIENT_KEY].chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    )
    assert chunks
    assert fake_a.wait_cancelled(1, timeout=5)  # the router let go of the lingering upstream
    (line,) = api_access(router, sent + 1)[sent:]
    assert (line["status"], line["outcome"]) == (200, "completed")
    after = metrics_of(router)
    assert moved(before, after, "switchyard_streams_total", outcome="completed") == 1
    assert moved(before, after, "switchyard_streams_total") == 1
    assert moved(before, after, REQUESTS, code="2xx", stream="true") == 1


def test_metrics_stay_up_while_the_api_drains(start_router: RouterFactory, fake_a: Fake) -> None:
    router = start_router(one_pool_config(fake_a, metrics={"port": 0}))
    with router.changed:
        router.changed.wait_for(lambda: _metrics_url(router) is not None, 10)
    url = _metrics_url(router)
    assert url is not None
    fake_a.fail_always({"chunk_delay": 0.05})
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True, "fake": {"words": 20}}
    auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with httpx.stream(
        "POST", f"{router.base_url}/chat/completions", json=body, headers=auth, timeout=30
    ) as response:
        chunks = response.iter_bytes()
        next(chunks)
        router.process.send_signal(signal.SIGTERM)
        with router.changed:
            router.changed.wait_for(
                lambda: any(r.get("msg") == "draining" for r in router.records()), 10
            )
        # The API takes no new connections; the open stream is still being counted.
        assert scrape(url).sum("switchyard_open_streams") == 1
        b"".join(chunks)
    assert router.process.wait(15) == 0
