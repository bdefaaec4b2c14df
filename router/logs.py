"""JSON log lines on stderr: one access line per request, and the router's own events.

Nothing logged here ever holds a secret: the access line is built from :class:`RequestContext`
fields only (ids, names, numbers), never from headers or bodies.

Access lines are buffered, as nginx's ``access_log ... buffer=32k flush=5s`` does: one write per
~4 KiB of lines (a pipe's atomic ``PIPE_BUF``, so the workers' lines never interleave mid-line),
and at most :data:`FLUSH_SECONDS` after the first line waiting. Every other record (events,
warnings, errors) writes through at once, after the access lines before it, so the order of the
stream is kept. The buffer is flushed when the server stops (SIGTERM and SIGINT drain, then flush)
and at interpreter exit (``logging.shutdown``, which ``logging`` registers with ``atexit``); a
SIGKILL loses at most the last :data:`FLUSH_SECONDS` of access lines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import sys
import time
from typing import TextIO

import orjson

from router.context import RequestContext

access_logger = logging.getLogger("switchyard.access")
logger = logging.getLogger("switchyard")

FLUSH_SECONDS = 0.1
# Writes to a pipe up to PIPE_BUF bytes are atomic (POSIX): several workers share one stderr.
WRITE_BYTES = select.PIPE_BUF


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class LineHandler(logging.StreamHandler[TextIO]):
    """JSON lines to a stream; access lines buffered (see the module docstring).

    Outside a running event loop nothing is buffered: there is no timer to flush it.
    """

    def __init__(self, stream: TextIO, flush_seconds: float = FLUSH_SECONDS) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())
        self._flush_seconds = flush_seconds
        self._pending: list[bytes] = []  # lines without their newline, UTF-8
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging's contract: a bad record never raises into the caller
            self.handleError(record)
            return
        self._add(line, buffered=record.name == access_logger.name)

    def access(self, line: bytes) -> None:
        """An access line, JSON bytes: what :meth:`emit` does with an access record, without
        the ``LogRecord`` (see :func:`log_access`). Kept as bytes: a UTF-8 stream's buffer
        takes them as they are (see :meth:`_put`)."""
        size = len(line) + 1
        with self.lock:  # type: ignore[union-attr]  # made by the constructor; C-level enter
            if self._size + size > WRITE_BYTES:
                self._write()
            self._pending.append(line)
            self._size += size
            if not self._arm_timer():
                self._write()

    def _add(self, line: str, buffered: bool) -> None:
        encoded = line.encode()
        size = len(encoded) + 1
        if self._size + size > WRITE_BYTES:
            self._write()
        self._pending.append(encoded)
        self._size += size
        if not buffered or not self._arm_timer():
            self._write()

    def _arm_timer(self) -> bool:
        """A flush within ``flush_seconds`` of the oldest waiting line; False with no loop."""
        timer_loop = self._timer_loop
        if self._timer is not None and timer_loop is not None and timer_loop.is_running():
            return True  # armed on the running loop: no lookup of the loop (a getpid call)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._timer is None or timer_loop is not loop:  # none yet, or a stopped loop's
            self._timer = loop.call_later(self._flush_seconds, self.flush)
            self._timer_loop = loop
        return True

    def flush(self) -> None:
        """Write every waiting line now (the timer, the server's cleanup, interpreter exit)."""
        self.acquire()
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        if not self._pending:
            return
        self._pending.append(b"")  # the last line's newline
        chunk = b"\n".join(self._pending)
        self._pending.clear()
        self._size = 0
        self._put(chunk)

    def _put(self, chunk: bytes) -> None:
        """Write UTF-8 ``chunk`` in one write: to a UTF-8 stream's binary buffer as it is (no
        decoding of every line, no encoding of the chunk), after what others left in the text
        layer; to any other stream as text, which encodes it as that stream does."""
        stream = self.stream
        try:
            buffer = getattr(stream, "buffer", None)  # ValueError if detached
            if buffer is None or getattr(stream, "encoding", None) != "utf-8":
                stream.write(chunk.decode())
                stream.flush()
                return
            stream.flush()
            buffer.write(chunk)
            buffer.flush()
        except (OSError, ValueError):  # stderr gone (closed pipe): the lines cannot go anywhere
            pass


def setup_logging(level: int = logging.INFO) -> None:
    handler = LineHandler(sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def flush_logs() -> None:
    """Write every buffered line now: called when the server stops (after the drain)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def log_event(msg: str, **fields: object) -> None:
    logger.info(msg, extra={"fields": fields})


# What every access line says, in this order (ttfb_ms and upstream_ms follow when an upstream
# was tried, a realtime session's counters after them).
_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "key_id",
    "model",
    "served_model",
    "backend",
    "attempts",
    "stream",
    "outcome",
    "upstream_request_id",
    "duration_ms",
)
# The whole line JsonFormatter would write. The process id is read once, not per line:
# os.getpid() is a system call on glibc >= 2.25, which no longer caches it. A forked child (a
# worker) reads its own.
_ACCESS_LINE: dict[str, object] = {
    "ts": 0.0,
    "level": "info",
    "logger": access_logger.name,
    "pid": os.getpid(),
    "msg": "request",
    **dict.fromkeys(_FIELDS),
}
os.register_at_fork(after_in_child=lambda: _ACCESS_LINE.update(pid=os.getpid()))


# What JsonFormatter adds to a record's fields: left to it when the line goes through logging.
_RECORD_KEYS = frozenset(("ts", "level", "logger", "pid", "msg"))


def log_access(ctx: RequestContext, method: str, path: str) -> None:
    """The access line of a finished request: straight to the one :class:`LineHandler` as JSON
    bytes, without a LogRecord, the logger's walk to the root and the formatter's calls (about
    half the cost of the line, benchmarks/README.md); through ``logging`` otherwise.

    The line is filled into a copy of its template (a dict of known keys and one store per
    value cost about half of building it anew, which grows and rehashes it twice), here and
    not in a helper: a call costs as much as a dozen stores. Milliseconds to 3 places by float
    arithmetic (rounded half up), not ``round(x, 3)``, which formats the number as digits:
    ``(x * 1e6 + 0.5) // 1.0 / 1e3`` is ``int(x * 1e6 + 0.5) / 1000`` for any x >= 0 (both
    divide the same whole number, exactly a float below 2**53, correctly rounded), without
    the call of ``int``."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    now = time.monotonic()
    line = _ACCESS_LINE.copy()
    line["ts"] = (time.time() * 1e3 + 0.5) // 1.0 / 1e3
    line["request_id"] = ctx.request_id
    line["method"] = method
    line["path"] = path
    line["status"] = ctx.status
    line["key_id"] = ctx.key_id
    line["model"] = ctx.model
    line["served_model"] = ctx.route_model
    line["backend"] = ctx.backend
    line["attempts"] = ctx.attempts
    line["stream"] = ctx.stream
    line["outcome"] = ctx.outcome
    line["upstream_request_id"] = ctx.upstream_request_id
    line["duration_ms"] = ((now - ctx.started) * 1e6 + 0.5) // 1.0 / 1e3
    started = ctx.upstream_started
    first_byte = ctx.upstream_first_byte
    if started is not None and first_byte is not None:
        line["ttfb_ms"] = ((first_byte - started) * 1e6 + 0.5) // 1.0 / 1e3
        line["upstream_ms"] = ((now - started) * 1e6 + 0.5) // 1.0 / 1e3
    if ctx.session is not None:
        line.update(ctx.session.log_fields())
    handlers = logging.root.handlers
    if len(handlers) == 1 and type(handlers[0]) is LineHandler and not access_logger.handlers:
        handlers[0].access(orjson.dumps(line))
        return
    fields = {name: value for name, value in line.items() if name not in _RECORD_KEYS}
    access_logger.info("request", extra={"fields": fields})
