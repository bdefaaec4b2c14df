"""Realtime pure logic: reading the handshake, backend URLs, close codes, usage, the stats."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import WSMsgType
from multidict import CIMultiDict, CIMultiDictProxy

from router.config import BackendConfig, ConfigError, parse_config
from router.handlers.admission import Charge
from router.handlers.realtime import lease_kept, read_offer
from router.limits import Limits, LocalLimiter
from router.sessionstats import SessionStats
from router.upstream.providers import PROVIDERS
from router.upstream.wsrelay import Ending, _client_ended, _relayable, response_done_usage

KEY = "sk-browser-key-0123456789"


def offer(**headers: str) -> tuple[str | None, bool, bool]:
    found = read_offer(CIMultiDictProxy(CIMultiDict(headers)))
    assert KEY not in repr(found)  # the key never shows in a repr (logs, tracebacks)
    return found.key, found.beta, found.answerable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": f"Bearer {KEY}"}, (KEY, False, True)),
        ({"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "realtime=v1"}, (KEY, True, True)),
        ({"OpenAI-Beta": "assistants=v2, realtime=v1"}, (None, True, True)),
        (
            {"Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{KEY}"},
            (KEY, False, True),
        ),
        (
            {
                "Sec-WebSocket-Protocol": (
                    f"realtime,openai-insecure-api-key.{KEY},openai-beta.realtime-v1"
                )
            },
            (KEY, True, True),
        ),
        ({"Sec-WebSocket-Protocol": f"openai-insecure-api-key.{KEY}"}, (KEY, False, False)),
        ({"Sec-WebSocket-Protocol": "openai-insecure-api-key."}, (None, False, False)),
        ({}, (None, False, True)),
    ],
    ids=[
        "bearer",
        "bearer-beta",
        "beta-list",
        "subprotocol",
        "subprotocol-beta",
        "key-only",
        "empty",
        "none",
    ],
)
def test_read_offer(headers: dict[str, str], expected: tuple[str | None, bool, bool]) -> None:
    assert offer(**headers) == expected


def test_the_header_wins_over_the_subprotocol() -> None:
    key, _, _ = offer(
        Authorization="Bearer sk-header-key-0123",
        **{"Sec-WebSocket-Protocol": f"realtime, openai-insecure-api-key.{KEY}"},
    )
    assert key == "sk-header-key-0123"


@pytest.mark.parametrize(
    ("config", "url"),
    [
        ({"url": "http://h:1/v1"}, "ws://h:1/v1/realtime?model=gpt-4o"),
        (
            {"url": "https://api.openai.com/v1", "model": "gpt-realtime"},
            "wss://api.openai.com/v1/realtime?model=gpt-realtime",
        ),
        (
            {
                "url": "https://r.openai.azure.com",
                "provider": "azure",
                "deployment": "rt",
                "api_version": "2025-04-01-preview",
            },
            "wss://r.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=rt",
        ),
    ],
    ids=["openai-http", "openai-https-renamed", "azure"],
)
def test_realtime_urls(config: dict[str, str], url: str) -> None:
    backend = BackendConfig.model_validate({"name": "b", **config})
    assert str(PROVIDERS[backend.provider].url(backend, "realtime", "gpt-4o")) == url


def test_realtime_idle_is_validated() -> None:
    text = "models: {m: {backends: [{name: b, url: 'http://h/v1', timeouts: {realtime_idle: %s}}]}}"
    backend = parse_config(text % "30", {}).models["m"].backends[0]
    assert backend.timeouts.realtime_idle == 30
    assert "realtime" in backend.endpoints  # every backend serves realtime unless told
    with pytest.raises(ConfigError) as caught:
        parse_config(text % "0", {})
    assert caught.value.problems[0].startswith("models.m.backends[0].timeouts.realtime_idle:")


@pytest.mark.parametrize(
    ("code", "relayed"),
    [
        (1000, 1000),
        (1001, 1001),
        (1011, 1011),
        (1014, 1014),
        (4000, 4000),
        (0, 1000),
        (1005, 1000),
        (1006, 1000),
        (1015, 1000),
    ],
)
def test_close_codes_relayed_when_a_frame_may_carry_them(code: int, relayed: int) -> None:
    assert _relayable(code) == relayed


def test_how_a_client_ending_is_named() -> None:
    assert _client_ended(WSMsgType.CLOSE, 1000, "") == Ending("completed", 1000, "")
    assert _client_ended(WSMsgType.CLOSE, 4000, "bye") == Ending("client_close", 4000, "bye")
    gone = _client_ended(WSMsgType.CLOSED, None, None)
    assert (gone.reason, gone.code) == ("client_close", 1001)


def event(kind: str, **fields: object) -> bytes:
    return orjson.dumps({"type": kind, **fields})


@pytest.mark.parametrize(
    ("data", "tokens"),
    [
        (event("response.done", response={"usage": {"total_tokens": 42}}), 42),
        (event("response.done", response={"usage": None}), None),
        (event("response.done", response={"status": "failed"}), None),
        (event("response.output_text.delta", delta='"response.done"'), None),
        (b"not json", None),
    ],
)
def test_response_done_tokens(data: bytes, tokens: int | None) -> None:
    usage = response_done_usage(data)
    assert (usage.total if usage is not None else None) == tokens


def test_session_stats_end_once() -> None:
    stats = SessionStats("fake-a", beta=False)
    stats.client.frames += 2
    stats.end("completed", 1000)
    stats.end("upstream_error", 1011)
    fields = stats.log_fields()
    assert (fields["ended"], fields["close_code"], fields["client_frames"]) == (
        "completed",
        1000,
        2,
    )
    assert "completed" in repr(stats)


class RenewalsSeen(LocalLimiter):
    """An in-process limiter that signals each renewal of its open lease."""

    def __init__(self, wanted: int) -> None:
        super().__init__(lease_ttl=0.03)  # renewed every 10 ms
        self.renewals = 0
        self._wanted = wanted
        self.enough = asyncio.Event()

    async def renew(self, key_id: str, limits: Limits, lease: str) -> None:
        await super().renew(key_id, limits, lease)
        self.renewals += 1
        if self.renewals >= self._wanted:
            self.enough.set()


async def test_a_session_keeps_renewing_its_lease() -> None:
    limiter = RenewalsSeen(wanted=3)
    limits = Limits(concurrency=1)
    assert (await limiter.admit("k", limits, 0, "session")).allowed
    charge = Charge("k", limits, "session", 0, {})
    with lease_kept(limiter, charge):
        await asyncio.wait_for(limiter.enough.wait(), timeout=5)
        # Ten ttls after admission, the lease still holds the key's one slot.
        assert not (await limiter.admit("k", limits, 0, "other")).allowed
    renewed = limiter.renewals
    await asyncio.sleep(0)  # let the cancelled renewal task finish
    assert limiter.renewals == renewed


async def test_no_renewal_without_a_concurrency_limit() -> None:
    limiter = RenewalsSeen(wanted=1)
    with lease_kept(limiter, Charge("k", Limits(rpm=5), "x", 0, {})), lease_kept(limiter, None):
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "switchyard-lease-renewal"]
