"""A route's wait queue on the event loop: futures for the waiters, one timer for the route.

The decisions are pure (:mod:`balancers.fairqueue` says who goes next, :mod:`balancers.vacancy`
whether the pool has room or is worth waiting for); this module only parks requests and wakes
them. It runs only for pools with a ``queue`` configured; without one the forwarder never
touches it.

A slot is handed over, never raced for: when a backend has room and someone waits, the next
waiter's backend is picked (``Pool.pick``) and its slot taken (``BackendState.begin``) right
there, in the code that freed it, before any other request can run. The waiter, when it
resumes, turns that reservation into its attempt (:func:`router.upstream.forward._queued`).
New requests queue behind anyone already waiting, so nobody overtakes the queue's order.

Wake-ups: a backend's slot frees (:meth:`~router.upstream.backend.Backend.end` calls
:meth:`Gate.wake`), or time passes: one ``call_at`` timer per route, at the earlier of the
oldest waiter's ``max_wait`` deadline and the end of the earliest 429 cooldown.
"""

from __future__ import annotations

import asyncio
import math

from balancers import BackendState, Pool
from balancers.fairqueue import FairQueue, Priority, Ticket
from balancers.vacancy import has_room, next_rest_end, ready_in
from router.config import QueueConfig
from router.errors import RateLimited
from router.metrics import QUEUE_OFF, QueueRecorder

Waiter = asyncio.Future[BackendState | None]
"""What a queued request awaits: the backend whose slot it was given (already counted in
flight), or None when the pool went down while it waited (it goes on as without a queue)."""


class Gate:
    """The wait queue in front of one route's pool."""

    __slots__ = (
        "_backends",
        "_clock",
        "_loop",
        "_queue",
        "_tickets",
        "_timer",
        "_timer_at",
        "metrics",
        "model",
        "pool",
    )

    def __init__(
        self,
        model: str,
        pool: Pool,
        config: QueueConfig,
        metrics: QueueRecorder = QUEUE_OFF,
    ) -> None:
        self.model = model
        self.pool = pool
        self.metrics = metrics
        self._queue: FairQueue[Waiter] = FairQueue(
            max_depth=config.max_depth, max_wait=config.max_wait
        )
        self._tickets = self._queue.tickets  # bound once: free() runs on every request
        self._backends = pool.backends
        self._clock = pool.clock
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def free(self) -> bool:
        """Go straight on: nobody waits and a backend has room (the one check per request)."""
        return not self._tickets and has_room(self._backends, self._clock())

    async def wait(self, key: str, priority: Priority) -> BackendState | None:
        """Queue until a backend's slot is handed over (returned, already counted in flight);
        None at once if the pool is down rather than busy, or later if it goes down. Raises
        429 when the queue is full or ``max_wait`` passes."""
        now = self.pool.clock()
        if ready_in(self.pool.backends, now) > self._queue.max_wait:
            return None  # down, or resting past max_wait: fail fast, as without a queue
        future: Waiter = self._loop.create_future()
        ticket = self._queue.push(future, key, priority, now)
        if ticket is None:
            self.metrics.shed(priority, "max_depth", queued=False)
            raise self._refusal("max_depth", now)
        self.metrics.queued(priority)
        self._dispatch()  # a slot may be free right now (a waiter ahead just took its turn)
        try:
            return await future
        except asyncio.CancelledError:
            self._abandoned(ticket)
            raise

    def wake(self) -> None:
        """A backend of this route freed a slot: hand it to the next waiter, if any."""
        if self._tickets:
            self._dispatch()

    def _dispatch(self) -> None:
        pool, queue = self.pool, self._queue
        now = pool.clock()
        for ticket in queue.expire(now):
            self._shed(ticket, now)
        while queue and has_room(pool.backends, now):
            waiting = queue.pop()
            assert waiting is not None
            if waiting.item.done():  # cancelled, its task not yet resumed to say so
                self.metrics.shed(waiting.priority, "disconnect")
                continue
            chosen = pool.pick()
            assert chosen is not None  # has_room: the pick's first tier is not empty
            chosen.begin()  # the waiter's slot, taken before anyone else can run
            self.metrics.left(waiting.priority, now - waiting.enqueued)
            waiting.item.set_result(chosen)
        if queue and ready_in(pool.backends, now) == math.inf:
            self._release_all(now)  # down while they waited: each goes on to the 503
        self._arm(now)

    def _arm(self, now: float) -> None:
        """One timer: the oldest waiter's deadline, or a 429 cooldown's end if sooner."""
        oldest = self._queue.oldest()
        if oldest is None:
            at = math.inf
        else:
            rest = next_rest_end(self.pool.backends, now)
            at = oldest.deadline if rest is None else min(oldest.deadline, rest)
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at != math.inf:
            # Pool clocks are time.monotonic(), as the loop's own clock is.
            self._timer = self._loop.call_at(at - now + self._loop.time(), self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self._dispatch()

    def _shed(self, ticket: Ticket[Waiter], now: float) -> None:
        if ticket.item.done():
            self.metrics.shed(ticket.priority, "disconnect")
            return
        self.metrics.shed(ticket.priority, "max_wait")
        ticket.item.set_exception(self._refusal("max_wait", now))

    def _release_all(self, now: float) -> None:
        while (ticket := self._queue.pop()) is not None:
            if ticket.item.done():
                self.metrics.shed(ticket.priority, "disconnect")
                continue
            self.metrics.left(ticket.priority, now - ticket.enqueued)
            ticket.item.set_result(None)

    def _abandoned(self, ticket: Ticket[Waiter]) -> None:
        """The waiter's client left: out of the queue at once; a slot already handed to it goes
        to the next waiter."""
        future = ticket.item
        if self._queue.remove(ticket):
            self.metrics.shed(ticket.priority, "disconnect")
            self._arm(self.pool.clock())
        elif future.done() and not future.cancelled() and future.exception() is None:
            chosen = future.result()
            if chosen is not None:
                chosen.end()  # the reservation, never turned into an attempt
                self.wake()

    def _refusal(self, reason: str, now: float) -> RateLimited:
        """429 for a request the queue will not serve; ``retry-after`` is when a slot may
        be free: the oldest waiter's deadline (a full queue), else a 429 cooldown's end."""
        if reason == "max_depth":
            oldest = self._queue.oldest()
            wait = oldest.deadline - now if oldest is not None else 1.0
            message = (
                f"Every backend of `{self.model}` is busy and its queue is full "
                f"({self._queue.max_depth} waiting)."
            )
        else:
            rest = next_rest_end(self.pool.backends, now)
            wait = rest - now if rest is not None else 1.0
            message = (
                f"Every backend of `{self.model}` stayed busy for "
                f"{self._queue.max_wait:g} s while this request waited."
            )
        seconds = max(1, math.ceil(wait))
        message += f" Please try again in {seconds} s."
        return RateLimited(message, kind="requests", headers={"retry-after": str(seconds)})

    def close(self) -> None:
        """Cancel the timer (the app is stopping); waiters end with their requests."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    def __repr__(self) -> str:
        return f"<Gate {self.model} {self._queue!r}>"
