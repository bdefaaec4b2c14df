"""A bounded wait queue, fair across keys, with priority classes: pure, clock-injected.

The router queues a request when its pool is only busy (every backend at ``max_inflight``, or
cooling down after a 429 for less than ``max_wait``). Who goes next when a slot frees is decided
here, synchronously; :mod:`router.upstream.gate` does the asyncio part (futures, one timer).

Order, in two levels:

* **Priority classes, strictly:** ``interactive`` before ``default`` before ``batch``. A batch
  request waits while interactive ones are queued; ``max_wait`` bounds how long (it is shed
  with a 429 then), so a flood of interactive traffic costs batch a retry, not a hang.
* **Within a class, deficit round-robin over keys** (Shreedhar and Varghese, 1995) with every
  request costing one slot, the pool's scarce unit. With a unit cost and a unit quantum DRR is
  a plain rotation over the keys that have something queued: a key that queues a thousand
  requests gets one turn in each round, as does a key that queues one. Within a key, first in,
  first out.

Every operation is O(1): a ticket is removed from the middle (a client that disconnects) by
dict deletion, and the oldest ticket, whose deadline is the earliest because every ticket of
one queue gets the same ``max_wait``, is the first of an insertion-ordered dict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Literal, TypeVar, get_args

Priority = Literal["interactive", "default", "batch"]
"""A key's queueing class; ``default`` when the key sets none."""
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
DEFAULT_PRIORITY: Priority = "default"
_RANK: dict[str, int] = {name: rank for rank, name in enumerate(PRIORITIES)}

T = TypeVar("T")


class Ticket(Generic[T]):
    """One queued request: what it carries, whose it is, and when it must be shed."""

    __slots__ = ("deadline", "enqueued", "item", "key", "priority")

    def __init__(self, item: T, key: str, priority: Priority, enqueued: float, deadline: float):
        self.item = item
        self.key = key
        self.priority = priority
        self.enqueued = enqueued
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"<Ticket {self.key} {self.priority} until={self.deadline:g}>"


class _Class(Generic[T]):
    """The tickets of one priority class: a FIFO per key and the rotation over the keys."""

    __slots__ = ("by_key", "size")

    def __init__(self) -> None:
        # key -> its tickets, oldest first (a dict as an ordered set: O(1) removal anywhere).
        # The dict's own order is the rotation: the key at the front goes next, then moves
        # to the back if it still has tickets.
        self.by_key: dict[str, dict[Ticket[T], None]] = {}
        self.size = 0

    def push(self, ticket: Ticket[T]) -> None:
        queue = self.by_key.get(ticket.key)
        if queue is None:
            queue = self.by_key[ticket.key] = {}
        queue[ticket] = None
        self.size += 1

    def pop(self) -> Ticket[T]:
        key, queue = next(iter(self.by_key.items()))
        ticket = next(iter(queue))
        del queue[ticket]
        del self.by_key[key]
        if queue:
            self.by_key[key] = queue  # re-inserted: to the back of the rotation
        self.size -= 1
        return ticket

    def remove(self, ticket: Ticket[T]) -> None:
        queue = self.by_key[ticket.key]
        del queue[ticket]
        if not queue:
            del self.by_key[ticket.key]
        self.size -= 1


class FairQueue(Generic[T]):
    """At most ``max_depth`` tickets, each shed ``max_wait`` seconds after it was pushed."""

    __slots__ = ("_classes", "max_depth", "max_wait", "tickets")

    def __init__(self, *, max_depth: int, max_wait: float) -> None:
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        if max_wait <= 0:
            raise ValueError(f"max_wait must be > 0, got {max_wait}")
        self.max_depth = max_depth
        self.max_wait = max_wait
        self._classes: tuple[_Class[T], ...] = tuple(_Class() for _ in PRIORITIES)
        # Every ticket, oldest (earliest deadline) first; read-only outside: a caller on a hot
        # path tests it for emptiness without a method call.
        self.tickets: dict[Ticket[T], None] = {}

    def __len__(self) -> int:
        return len(self.tickets)

    def __bool__(self) -> bool:
        return bool(self.tickets)

    def __iter__(self) -> Iterator[Ticket[T]]:
        """The tickets, oldest first."""
        return iter(list(self.tickets))

    def full(self) -> bool:
        return len(self.tickets) >= self.max_depth

    def push(self, item: T, key: str, priority: Priority, now: float) -> Ticket[T] | None:
        """Queue ``item`` for ``key``; None (nothing queued) when the queue is full."""
        if len(self.tickets) >= self.max_depth:
            return None
        ticket = Ticket(item, key, priority, now, now + self.max_wait)
        self._classes[_RANK[priority]].push(ticket)
        self.tickets[ticket] = None
        return ticket

    def pop(self) -> Ticket[T] | None:
        """The next ticket to serve (highest class, then the next key in turn), or None."""
        for cls in self._classes:
            if cls.size:
                ticket = cls.pop()
                del self.tickets[ticket]
                return ticket
        return None

    def remove(self, ticket: Ticket[T]) -> bool:
        """Take ``ticket`` out wherever it is (its client left); False if it is not queued."""
        if ticket not in self.tickets:
            return False
        del self.tickets[ticket]
        self._classes[_RANK[ticket.priority]].remove(ticket)
        return True

    def oldest(self) -> Ticket[T] | None:
        """The ticket with the earliest deadline, or None when empty."""
        return next(iter(self.tickets), None)

    def expire(self, now: float) -> list[Ticket[T]]:
        """Take out and return every ticket whose deadline is ``now`` or earlier, oldest first."""
        expired: list[Ticket[T]] = []
        for ticket in self.tickets:
            if ticket.deadline > now:
                break
            expired.append(ticket)
        for ticket in expired:
            self.remove(ticket)
        return expired

    def depth(self, priority: Priority) -> int:
        """Tickets queued in one class."""
        return self._classes[_RANK[priority]].size

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name} {self.depth(name)}" for name in PRIORITIES)
        return f"<FairQueue {len(self)}/{self.max_depth} [{sizes}] max_wait={self.max_wait:g}s>"
