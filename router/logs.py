"""JSON log lines on stderr: one access line per request, and the router's own events.

Nothing logged here ever holds a secret: the access line is built from :class:`RequestContext`
fields only (ids, names, numbers), never from headers or bodies.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from router.context import RequestContext

access_logger = logging.getLogger("switchyard.access")
logger = logging.getLogger("switchyard")


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


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_event(msg: str, **fields: object) -> None:
    logger.info(msg, extra={"fields": fields})


def log_access(ctx: RequestContext, method: str, path: str) -> None:
    if not access_logger.isEnabledFor(logging.INFO):
        return
    now = time.monotonic()
    fields: dict[str, object] = {
        "request_id": ctx.request_id,
        "method": method,
        "path": path,
        "status": ctx.status,
        "key_id": ctx.key_id,
        "model": ctx.model,
        "served_model": ctx.route_model,
        "backend": ctx.backend,
        "attempts": ctx.attempts,
        "stream": ctx.stream,
        "outcome": ctx.outcome,
        "upstream_request_id": ctx.upstream_request_id,
        "duration_ms": round((now - ctx.started) * 1000, 2),
    }
    if ctx.upstream_started is not None and ctx.upstream_first_byte is not None:
        fields["ttfb_ms"] = round((ctx.upstream_first_byte - ctx.upstream_started) * 1000, 2)
        fields["upstream_ms"] = round((now - ctx.upstream_started) * 1000, 2)
    if ctx.session is not None:
        fields.update(ctx.session.log_fields())
    access_logger.info("request", extra={"fields": fields})
