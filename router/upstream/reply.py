"""An upstream answer on its way to the client, and the one place its slot is freed."""

from __future__ import annotations

from router.upstream.backend import Backend
from router.upstream.http import UpstreamResponse

# Upstream headers the client gets. Others (the upstream's own rate-limit headers, cookies,
# server identity) describe the router's provider account, not the client's request.
# Content-Encoding: only there when the upstream compressed with a coding the client of the
# router decodes instead of us (we ask for identity and decode gzip/deflate ourselves).
_RELAYED_HEADERS = (
    "content-type",
    "content-encoding",
    "x-request-id",
    "openai-processing-ms",
    "openai-version",
)


class Reply:
    """The response of the attempt that succeeded. ``close()`` is idempotent and must run."""

    __slots__ = (
        "_closed",
        "backend",
        "body",
        "done",
        "first_byte",
        "response",
        "started",
        "status",
        "streaming",
    )

    def __init__(
        self,
        backend: Backend,
        response: UpstreamResponse,
        started: float,
        first_byte: float,
    ) -> None:
        self.backend = backend
        self.response = response
        self.started = started
        self.first_byte = first_byte
        self.status = response.status  # the head has arrived: it is what it will stay
        # A prefix test: no parsing of the header's parameters.
        content_type = response.headers.get("content-type", "")
        self.streaming = content_type.startswith("text/event-stream")
        self.body: bytes | None = None
        self.done: float | None = None  # when a non-streamed body was read whole
        self._closed = False

    def client_headers(self, request_id: str) -> dict[str, str]:
        upstream = self.response.headers
        headers: dict[str, str] = {}
        for name in _RELAYED_HEADERS:  # a loop, not a comprehension: no function call
            value = upstream.get(name)
            if value:
                headers[name] = value
        headers.setdefault("x-request-id", request_id)
        headers["x-switchyard-backend"] = self.backend.name
        return headers

    def close(self) -> None:
        """Free the backend slot; drop the upstream connection if its body was not read out."""
        if self._closed:
            return
        self._closed = True
        self.response.close()
        self.backend.end()

    def __repr__(self) -> str:
        kind = "stream" if self.streaming else "json"
        return f"<Reply {self.backend.name} {self.status} {kind} closed={self._closed}>"
