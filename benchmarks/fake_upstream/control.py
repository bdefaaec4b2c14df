"""The ``/_fake/`` control API: script faults, read what arrived, wait for disconnects.

No auth here: these endpoints exist for tests and benchmarks, never for the router.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from benchmarks.fake_upstream.faults import Fault
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
