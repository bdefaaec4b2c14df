"""The ``/_fake/`` control API: script faults, read what arrived, wait for disconnects, and
set the account's parts: its quota (``/_fake/quota``), its prefix cache
(``/_fake/prefix_cache``) and its store (``/_fake/store``).

No auth here: these endpoints exist for tests and benchmarks, never for the router.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from benchmarks.fake_upstream.faults import Fault
from benchmarks.fake_upstream.prefix_cache import (
    OPENAI_BLOCK_TOKENS,
    OPENAI_MIN_TOKENS,
    PrefixCache,
)
from benchmarks.fake_upstream.quota import HEADER_MODES
from benchmarks.fake_upstream.state import STATE
from benchmarks.fake_upstream.wire import ApiError, json_response, read_json


async def add_faults(request: web.Request) -> web.Response:
    """``{"next": [fault, ...]}`` queues one fault per coming request; ``{"always": fault}``
    (or null) sets the standing one."""
    state = request.app[STATE]
    body = await read_json(request)
    queued = body.get("next", [])
    if not isinstance(queued, list):
        raise ApiError(400, "'next' must be an array of faults.", param="next")
    faults = [Fault.parse(raw, param=f"next[{i}]") for i, raw in enumerate(queued)]
    if "always" in body:
        always = body["always"]
        state.always = None if always is None else Fault.parse(always, param="always")
    state.queued.extend(faults)
    return _fault_summary(request)


async def clear_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.queued.clear()
    state.always = None
    return _fault_summary(request)


def _fault_summary(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return json_response({"queued": len(state.queued), "always": state.always is not None})


async def list_requests(request: web.Request) -> web.Response:
    return json_response({"data": list(request.app[STATE].recorded)})


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].recorded.clear()
    return json_response({"data": []})


async def list_sessions(request: web.Request) -> web.Response:
    """Realtime sessions as recorded; ``?ended=N&timeout=S`` first waits (up to S seconds, 408
    after) until N of them have ended, so a test sees a close without sleeping for it."""
    state = request.app[STATE]
    if "ended" in request.query:
        threshold = int(_number(request, "ended", 1.0))
        timeout = _number(request, "timeout", 5.0)
        try:
            await asyncio.wait_for(state.sessions_ended_reached(threshold), timeout)
        except TimeoutError:
            message = f"Timed out: {state.sessions_ended()} sessions ended, waited for {threshold}."
            raise ApiError(408, message, param="ended", code="timeout") from None
    return json_response({"data": [record.to_dict() for record in state.sessions]})


async def clear_sessions(request: web.Request) -> web.Response:
    request.app[STATE].sessions.clear()
    return json_response({"data": []})


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].stats())


async def wait(request: web.Request) -> web.Response:
    """``?cancelled=N&timeout=S``: 200 once N requests were cancelled, 408 after S seconds."""
    state = request.app[STATE]
    threshold = _number(request, "cancelled", 1.0)
    timeout = _number(request, "timeout", 5.0)
    try:
        await asyncio.wait_for(state.cancelled_reached(int(threshold)), timeout)
    except TimeoutError:
        message = f"Timed out: {state.cancelled} cancelled, waited for {int(threshold)}."
        raise ApiError(408, message, param="cancelled", code="timeout") from None
    return json_response(state.stats())


def _number(request: web.Request, name: str, default: float) -> float:
    try:
        return float(request.query.get(name, default))
    except ValueError:
        raise ApiError(400, f"'{name}' must be a number.", param=name) from None


async def set_quota(request: web.Request) -> web.Response:
    """``{"rpm": N|null, "tpm": N|null, "headers": "openai"|"azure"|"none", "window": S}``: a
    fresh quota (full buckets of ``S`` seconds' worth, default 60); both limits null (or 0)
    turn it off. Answers as ``GET``."""
    state = request.app[STATE]
    body = await read_json(request)
    headers = body.get("headers", "openai")
    if headers not in HEADER_MODES:
        raise ApiError(400, f"'headers' must be one of {', '.join(HEADER_MODES)}.", param="headers")
    window = body.get("window", 60.0)
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= 60:
        raise ApiError(400, "'window' must be a number of seconds in (0, 60].", param="window")
    state.set_quota(_limit(body, "rpm"), _limit(body, "tpm"), headers, float(window))
    return _quota_summary(request)


async def get_quota(request: web.Request) -> web.Response:
    return _quota_summary(request)


async def clear_quota(request: web.Request) -> web.Response:
    request.app[STATE].quota = None
    return _quota_summary(request)


def _quota_summary(request: web.Request) -> web.Response:
    quota = request.app[STATE].quota
    off = {"rpm": None, "tpm": None, "headers": None}
    return json_response(off if quota is None else quota.snapshot())


async def set_prefix_cache(request: web.Request) -> web.Response:
    """``{"blocks": N, "min_tokens": M, "block_tokens": B}``: a fresh, empty cache of N blocks
    (0 turns it off; M and B default to OpenAI's 1024 and 128)."""
    state = request.app[STATE]
    body = await read_json(request)
    blocks = _limit(body, "blocks") or 0
    block_tokens = _limit(body, "block_tokens") or OPENAI_BLOCK_TOKENS
    min_tokens = _limit(body, "min_tokens") or OPENAI_MIN_TOKENS
    state.prefix_cache = PrefixCache(blocks, min_tokens, block_tokens) if blocks else None
    return _cache_summary(request)


async def clear_prefix_cache(request: web.Request) -> web.Response:
    request.app[STATE].prefix_cache = None
    return _cache_summary(request)


def _cache_summary(request: web.Request) -> web.Response:
    cache = request.app[STATE].prefix_cache
    if cache is None:
        return json_response({"blocks": 0})
    return json_response(
        {
            "blocks": cache.capacity,
            "min_tokens": cache.min_tokens,
            "block_tokens": cache.block_tokens,
            "cached_blocks": len(cache),
        }
    )


async def set_store(request: web.Request) -> web.Response:
    """``{"background_seconds": S}``: how long a background response takes from now on."""
    store = request.app[STATE].store
    body = await read_json(request)
    seconds = body.get("background_seconds", store.background_seconds)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        message = "'background_seconds' must be a non-negative number."
        raise ApiError(400, message, param="background_seconds")
    store.background_seconds = float(seconds)
    return json_response({"background_seconds": store.background_seconds, **store.stats()})


async def clear_store(request: web.Request) -> web.Response:
    """Forget every stored response and conversation."""
    store = request.app[STATE].store
    store.clear()
    return json_response({"background_seconds": store.background_seconds, **store.stats()})


async def clear_stats(request: web.Request) -> web.Response:
    """Zero the usage and refusal counters (not ``requests``/``cancelled``, which tests read as
    deltas)."""
    state = request.app[STATE]
    state.usage = dict.fromkeys(state.usage, 0)
    state.refused = dict.fromkeys(state.refused, 0)
    return json_response(state.stats())


def _limit(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f"'{key}' must be a non-negative integer or null.", param=key)
    return value
