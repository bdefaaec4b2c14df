"""Auto-pipelining: the limiter's Redis calls of one loop tick share one round trip.

A burst of a thousand admissions is a thousand script calls. Sent one per connection, they need
a thousand connections (redis-py's default pool raises ``MaxConnectionsError`` past 100, and a
limiter that fails open on that error admits the whole burst); sent one after another on a few
connections, they queue for a thousand round trips. So, as ioredis's ``enableAutoPipelining``
and rueidis's auto-pipelining do, calls are queued and written together: each round trip carries
every call queued since the last one left (up to ``max_batch``), and at most ``max_in_flight``
round trips are on the wire at once. The limiter therefore needs at most ``max_in_flight``
connections whatever the load, and never waits on a connection pool.

Time is split in two, and only the second part can fail:

- waiting in the queue is not a Redis failure. It ends when the round trips ahead of the call
  end, and each ends (answered or failed) within ``timeout``, so a call waits at most
  ``ceil(ahead / (max_batch * max_in_flight)) * timeout``: with the defaults, one ``timeout``
  per 1,024 calls ahead;
- ``timeout`` bounds the round trip alone, from the moment its batch is written until Redis
  has answered all of it (a connect on the way included): a Redis that is unreachable or slow
  to answer fails every call of that batch with the error seen.

A call whose caller has gone (a cancelled request) before its batch leaves is dropped unsent.
Scripts are called by SHA; a server that lacks one (restarted, flushed) answers ``NOSCRIPT``,
and the batch loads the script and sends those calls again, within the same ``timeout``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

MAX_BATCH = 256  # calls per round trip: a few ms of Redis time for admit.lua
MAX_IN_FLIGHT = 4  # round trips on the wire at once, each on a connection of its own


class _Call:
    __slots__ = ("command", "future", "script")

    def __init__(
        self, command: tuple[Any, ...], script: AsyncScript | None, future: asyncio.Future[Any]
    ) -> None:
        self.command = command
        self.script = script
        self.future = future


class Pipeliner:
    """Queues Redis commands and sends each tick's worth in one pipelined round trip."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        timeout: float,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[_Call] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._closed = False
        self.round_trips = 0

    def __repr__(self) -> str:
        return (
            f"<Pipeliner [{len(self._queue)} queued | {len(self._tasks)} in flight"
            f" | {self.round_trips} round trips]>"
        )

    def submit(self, script: AsyncScript, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue ``script`` (EVALSHA) for the next round trip: a future of its reply (or the
        error). Unlike :meth:`command`, it goes out even if its caller is cancelled meanwhile,
        unless the future itself is cancelled."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return self._queued(command, script)

    async def script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` (EVALSHA) in the next round trip; its reply, or the error raised."""
        return await self.submit(script, keys, args)

    async def command(self, *command: Any) -> Any:
        """Send ``command`` in the next round trip; its reply, or the error raised."""
        return await self._queued(command, None)

    def _queued(self, command: tuple[Any, ...], script: AsyncScript | None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.cancel()
            return future
        self._queue.append(_Call(command, script, future))
        self._kick()
        return future

    async def close(self) -> None:
        """Cancel what is queued and the round trips on the wire (their callers get
        CancelledError); nothing is sent after this."""
        self._closed = True
        while self._queue:
            self._queue.popleft().future.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _kick(self) -> None:
        # One send per tick: every call queued in this tick goes out together.
        if not self._scheduled and self._queue and len(self._tasks) < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._queue and len(self._tasks) < self._max_in_flight:
            batch = self._take()
            if not batch:
                return
            task = loop.create_task(self._round_trip(batch), name="switchyard-limits-redis")
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _take(self) -> list[_Call]:
        batch: list[_Call] = []
        while self._queue and len(batch) < self._max_batch:
            call = self._queue.popleft()
            if not call.future.done():  # its caller has gone: nothing to send
                batch.append(call)
        return batch

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._kick()

    async def _round_trip(self, batch: list[_Call]) -> None:
        self.round_trips += 1
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._execute(batch)
        except asyncio.CancelledError:  # closing: no caller is left waiting
            for call in batch:
                call.future.cancel()
            raise
        except Exception as exc:  # every caller gets the error, to judge for itself
            replies = [exc] * len(batch)
        for call, reply in zip(batch, replies, strict=True):
            if call.future.done():
                continue
            if isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        replies = await self._pipelined([call.command for call in batch])
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # a restarted or flushed server: load what it lacks, send those again
            scripts = {batch[i].script for i in missing if batch[i].script is not None}
            for script in scripts:
                assert script is not None
                await self._client.script_load(script.script)
            again = await self._pipelined([batch[i].command for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _pipelined(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if len(commands) == 1:  # a lone call skips the pipeline's bookkeeping (a third faster)
            try:
                return [await self._client.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
            except ResponseError as exc:  # an error reply, as a pipeline would hand it back
                return [exc]
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
