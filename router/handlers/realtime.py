"""``GET /v1/realtime``: the Realtime API's WebSocket, relayed to a backend of the model's pool.

The session reads top to bottom in :func:`realtime`: who is calling (a Bearer key, or the key a
browser puts in a subprotocol), which model, whether the request can be upgraded at all, the
key's limits (an open session is one request in flight), then the upstream is dialed with
retries and fallbacks. Only once a backend has accepted is the client's upgrade answered, so
every refusal is OpenAI's error JSON with its status, never a WebSocket that closes at once.
Then the relay runs until one side ends the session; one ``finally`` closes the upstream and
frees its backend slot, another returns the key's slot.

Browsers cannot set headers on a WebSocket, so they send the key as a subprotocol
(``realtime, openai-insecure-api-key.<KEY>[, openai-beta.realtime-v1]``). The router answers with
``realtime`` (or the beta marker), never the key-bearing protocol, and refuses an offer without
either before aiohttp would log the offered list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

from router.appkeys import AUTH, FORWARDER, LIMITER, METRICS, ROUTES
from router.auth import bearer_token
from router.context import CONTEXT
from router.edge import edge
from router.endpoints import ENDPOINTS
from router.errors import InvalidRequest
from router.handlers.admission import Charge, admit, finish
from router.handlers.common import principal_for, require_model, text_header
from router.limits import Limiter
from router.sessionstats import SessionStats
from router.upstream.backend import Backend
from router.upstream.realtime import (
    CLOSE_TIMEOUT,
    MAX_MESSAGE_BYTES,
    DialRequest,
    Upstream,
    dial_attempt,
)
from router.upstream.route import Route
from router.upstream.wsrelay import CLIENT_GONE, SHUTDOWN, OnUsage, Relay

_KEY_PROTOCOL = "openai-insecure-api-key."
_BETA_PROTOCOL = "openai-beta.realtime-v1"
# What the router may answer with: the first of these the client offers.
_ANSWERS = ("realtime", _BETA_PROTOCOL)


@dataclass(frozen=True, slots=True)
class Offer:
    """What the client's handshake presents and asks for."""

    key: str | None = field(repr=False)
    beta: bool
    answerable: bool  # no subprotocol offered, or one the router can answer with


def read_offer(headers: CIMultiDictProxy[str]) -> Offer:
    offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",")]
    key = bearer_token(headers.get("Authorization"))
    if key is None:
        presented = (p for p in offered if p.startswith(_KEY_PROTOCOL))
        key = next(presented, "").removeprefix(_KEY_PROTOCOL) or None
    betas = (value.strip() for value in headers.get("OpenAI-Beta", "").split(","))
    beta = _BETA_PROTOCOL in offered or "realtime=v1" in betas
    answerable = offered == [""] or any(p in _ANSWERS for p in offered)
    return Offer(key, beta, answerable)


class OpenSessions:
    """The relays of the open sessions, so that a draining router can close them."""

    def __init__(self) -> None:
        self._relays: set[Relay] = set()

    @contextmanager
    def open(self, relay: Relay) -> Iterator[None]:
        self._relays.add(relay)
        try:
            yield
        finally:
            self._relays.discard(relay)

    def stop_all(self) -> None:
        for relay in list(self._relays):
            relay.stop(SHUTDOWN)

    def __len__(self) -> int:
        return len(self._relays)

    def __repr__(self) -> str:
        return f"<OpenSessions {len(self)} open>"


SESSIONS = web.AppKey("realtime_sessions", OpenSessions)


async def realtime(request: web.Request) -> web.StreamResponse:
    ctx = request[CONTEXT]
    offer = read_offer(request.headers)
    principal = await principal_for(request.app[AUTH], offer.key)
    ctx.key_id = principal.key_id
    ctx.priority = principal.priority
    ctx.model = model = require_model({"model": request.query.get("model")})
    chain = request.app[ROUTES].chain("realtime", model, principal)
    ws = _accepting(request, offer)
    ctx.stream = True
    if principal.limits.empty:
        return await _session(request, ws, chain, offer, None)
    limiter = request.app[LIMITER]
    # A session's tokens are known only as its responses report them: admission takes none (a
    # key in token debt still waits), and each response.done settles its usage as it happens.
    charge = await admit(limiter, principal, 0, ctx.request_id)
    try:
        return await _session(request, ws, chain, offer, charge)
    finally:
        await finish(limiter, charge)


def _accepting(request: web.Request, offer: Offer) -> web.WebSocketResponse[bool]:
    """The client's WebSocket, not yet answered; 400 if the request cannot be upgraded."""
    if not offer.answerable:
        raise InvalidRequest(
            "Offer the `realtime` subprotocol alongside the API key's.",
            code="unsupported_subprotocol",
        )
    ws = web.WebSocketResponse(
        protocols=_ANSWERS,
        timeout=CLOSE_TIMEOUT,
        autoclose=False,  # the relay answers a close with the code it forwards
        autoping=True,
        compress=False,  # frames are relayed as they are, never inflated and deflated again
        max_msg_size=MAX_MESSAGE_BYTES,
        decode_text=False,
    )
    if not ws.can_prepare(request):
        raise InvalidRequest(
            "This endpoint is a WebSocket: connect with a WebSocket client.",
            code="websocket_required",
        )
    return ws


async def _session(
    request: web.Request,
    ws: web.WebSocketResponse[bool],
    chain: tuple[Route, ...],
    offer: Offer,
    charge: Charge | None,
) -> web.WebSocketResponse[bool]:
    """Dial, answer the upgrade, relay; the upstream is closed and its slot freed in one
    finally, however the session ends."""
    ctx = request[CONTEXT]
    app = request.app
    dial = DialRequest(offer.beta, ctx.request_id, text_header(request, "User-Agent"))
    upstream = await app[FORWARDER].forward(chain, dial_attempt(dial), ctx)
    try:
        ws.headers.update(_answer_headers(ctx.request_id, upstream, charge))
        await ws.prepare(request)
        stats = ctx.session = SessionStats(upstream.backend.name, offer.beta)
        idle = upstream.backend.timeouts.realtime_idle
        relay = Relay(ws, upstream, stats, idle=idle, on_usage=_settler(app[LIMITER], charge))
        with (
            app[SESSIONS].open(relay),
            _counted_open(upstream.backend),
            lease_kept(app[LIMITER], charge),
        ):
            ending = await relay.run()
        ctx.outcome = ending.reason
        return ws
    finally:
        await upstream.close(CLIENT_GONE.code, CLIENT_GONE.frame_reason)  # no-op after the relay
        if ctx.session is not None:
            ctx.usage = ctx.session.usage


@contextmanager
def lease_kept(limiter: Limiter, charge: Charge | None) -> Iterator[None]:
    """Renew the session's concurrency lease every third of its ttl while the session lasts:
    a session may outlive the ttl that frees a crashed router's leases."""
    if charge is None or charge.limits.concurrency is None:
        yield
        return
    task = asyncio.get_running_loop().create_task(
        _renew_forever(limiter, charge, limiter.lease_ttl / 3), name="switchyard-lease-renewal"
    )
    try:
        yield
    finally:
        task.cancel()


async def _renew_forever(limiter: Limiter, charge: Charge, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await limiter.renew(charge.key_id, charge.limits, charge.lease)


@contextmanager
def _counted_open(backend: Backend) -> Iterator[None]:
    """The backend's open-sessions gauge, while the relay runs."""
    backend.session_opened()
    try:
        yield
    finally:
        backend.session_closed()


def _answer_headers(request_id: str, upstream: Upstream, charge: Charge | None) -> dict[str, str]:
    headers = {"x-request-id": request_id, "x-switchyard-backend": upstream.backend.name}
    if charge is not None:
        headers.update(charge.headers)
    return headers


def _settler(limiter: Limiter, charge: Charge | None) -> OnUsage | None:
    """Charge each response's tokens to the key at once: a session may last an hour, and its
    tokens count in the minute they were used, not when it ends."""
    if charge is None or charge.limits.tpm is None:
        return None
    key_id, limits = charge.key_id, charge.limits

    async def settle(tokens: int) -> None:
        await limiter.settle(key_id, limits, tokens)

    return settle


async def _close_sessions(app: web.Application) -> None:
    """On shutdown: close open sessions with 1001 at once (a client reconnects elsewhere)
    rather than hold the drain for sessions that may last an hour."""
    app[SESSIONS].stop_all()


def add_routes(app: web.Application) -> None:
    app[SESSIONS] = OpenSessions()
    app.on_shutdown.append(_close_sessions)
    record = app[METRICS].request_done
    path = ENDPOINTS["realtime"].path
    app.router.add_get(path, edge(realtime, "realtime", record), allow_head=False)
