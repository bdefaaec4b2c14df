"""What the router reads out of a relayed stream, without re-encoding what passes through.

Two facts: when the first output arrived (time to first token) and the token usage.

The first output is the first event that carries generated text, refusal, reasoning or tool-call
arguments: a chat chunk whose delta has a non-empty one of those, or a Responses ``*.delta``
event. Chat's opening chunk (``"role":"assistant","content":""``) is not output: providers send
it as soon as the request is accepted. Once found, later chunks skip the search.

Chat streams report usage in a last chunk with ``"choices": []`` when ``include_usage`` is set;
the router asks for it when the client did not (for the key's tokens and the metrics) and then
removes that chunk, so the client sees the stream it asked for. Responses streams report usage
inside their final ``response.completed`` (or ``incomplete``/``failed``) event. Only chunks
holding ``"usage":{`` are looked into, from the end (where usage is reported), so other
chunks cost one substring search.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from router.endpoints import ENDPOINTS, Endpoint
from router.usage import Usage, usage_of

_MARK = b'"usage":{'
_EVENT_END = b"\n\n"
_CRLF_END = b"\r\n\r\n"


class StreamTap:
    __slots__ = ("_endpoint", "_in_response", "_output", "_strip", "first_output", "usage")

    def __init__(self, endpoint: Endpoint, *, strip: bool) -> None:
        self._endpoint = endpoint
        spec = ENDPOINTS[endpoint]
        self._output = spec.output
        self._in_response = spec.usage_in_response
        self._strip = strip
        self.first_output: float | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Whole SSE events in; the events to forward out (the usage chunk dropped if asked)."""
        if self.first_output is None and self._output(chunk):
            self.first_output = time.monotonic()
        mark = chunk.rfind(_MARK)
        if mark < 0:  # most chunks: one search, nothing more
            return chunk
        # Events end as the chunk does (the relay hands over whole events): LF or CRLF lines.
        sep = _CRLF_END if chunk.endswith(_CRLF_END) else _EVENT_END
        while mark >= 0:  # from the end: the last event reporting usage is the one that counts
            before = chunk.rfind(sep, 0, mark)
            start = 0 if before < 0 else before + len(sep)
            end = chunk.find(sep, mark)
            end = len(chunk) if end < 0 else end + len(sep)
            usage_only = self._read(chunk[start:end])
            if usage_only is not None:
                return chunk[:start] + chunk[end:] if usage_only and self._strip else chunk
            mark = chunk.rfind(_MARK, 0, start)
        return chunk

    def _read(self, event: bytes) -> bool | None:
        """Take the usage from one event: None if it reports none, else whether it was the
        chat usage-only chunk."""
        data = _data_of(event)
        if not isinstance(data, dict):
            return None
        if self._in_response:
            response = data.get("response")
            usage = usage_of(response.get("usage")) if isinstance(response, dict) else None
            if usage is None:
                return None
            self.usage = usage
            return False
        usage = usage_of(data.get("usage"))
        if usage is None:
            return None
        self.usage = usage
        return data.get("choices") == []

    def __repr__(self) -> str:
        return f"<StreamTap {self._endpoint} first_output={self.first_output} {self.usage}>"


def _data_of(event: bytes) -> Any:
    if event.startswith(b"data:") and event.count(b"\n") <= 2:  # one line: JSON may end in \n
        data = event[5:]
    else:
        lines = [line[5:] for line in event.splitlines() if line.startswith(b"data:")]
        data = b"\n".join(lines)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
