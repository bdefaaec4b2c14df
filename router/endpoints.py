"""Each endpoint the router serves, described once and picked by name from :data:`ENDPOINTS`.

A description says everything the request path needs to know about an endpoint: the router's
path, the path under a backend's URL (OpenAI's spelling; a provider may place it elsewhere),
how a stream of it ends, which streamed events carry output (the first token's time), where its
usage is reported, and whether its answer costs output tokens in the admission estimate. The
strategies registry (``balancers.strategies``) is the model: adding an endpoint is one entry
here, the name in :data:`Endpoint`, and its handler.

A pure module (it imports nothing of the router), so the config and every layer may read it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Endpoint = Literal["chat", "embeddings", "responses", "realtime"]

_QUOTE = ord('"')
_SPACED_VALUE = re.compile(rb'\s+"[^"]')  # after a key's colon: spaces, a non-empty string

OutputTest = Callable[[bytes], bool]
"""Whether whole SSE events carry model output (the first token's time)."""


def _never(events: bytes) -> bool:
    return False


class KeyedOutput:
    """Output is a non-empty string under one of ``keys`` (chat: ``"content": "The"``).

    A substring search per key and a look at the bytes after each hit, not a regex over the
    events: ``re`` tries its alternation at every quote of a chunk, where ``bytes.find`` skips
    ahead (the benchmark's 3 KB chunk: 3.0 us against 1.4 us)."""

    __slots__ = ("_keys",)

    def __init__(self, *names: str) -> None:
        self._keys = tuple(f'"{name}":'.encode() for name in names)

    def __call__(self, events: bytes) -> bool:
        for key in self._keys:
            at = events.find(key)
            while at >= 0:
                at += len(key)
                value = events[at : at + 2]
                if value[:1] == b'"':
                    if len(value) == 2 and value[1] != _QUOTE:
                        return True
                elif _SPACED_VALUE.match(events, at):  # compact JSON has no spaces there
                    return True
                at = events.find(key, at)
        return False


class HintedOutput:
    """Output is what ``pattern`` matches, looked for only where the literal ``hint`` (which
    every match holds) appears at all."""

    __slots__ = ("_hint", "_search")

    def __init__(self, hint: bytes, pattern: bytes) -> None:
        self._hint = hint
        self._search = re.compile(pattern).search

    def __call__(self, events: bytes) -> bool:
        return self._hint in events and self._search(events) is not None


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What the request path knows of one endpoint."""

    name: Endpoint
    path: str
    """The router's path, as OpenAI's: ``/v1/chat/completions``."""
    upstream_path: str
    """The path under a backend's URL (``{url}/chat/completions``)."""
    stream_ends: tuple[bytes, ...] = ()
    """How a stream of it ends; a stream that stops without one of these was cut off."""
    output: OutputTest = _never
    """Whether streamed events carry output: the time to first token."""
    usage_in_response: bool = False
    """A streamed usage sits in ``response.usage`` (Responses) rather than top-level ``usage``."""
    asks_usage: bool = False
    """A stream may be asked for its usage chunk (``stream_options.include_usage``)."""
    output_tokens: bool = True
    """The answer costs output tokens: the admission estimate adds ``max_tokens``."""
    deployment_scoped: bool = True
    """On Azure, served per deployment (``/openai/deployments/{name}/...``), not at ``/openai/``."""


ENDPOINTS: Mapping[Endpoint, EndpointSpec] = MappingProxyType(
    {
        "chat": EndpointSpec(
            "chat",
            "/v1/chat/completions",
            "chat/completions",
            stream_ends=(b"data: [DONE]",),
            output=KeyedOutput("content", "refusal", "arguments", "reasoning_content", "reasoning"),
            asks_usage=True,
        ),
        "embeddings": EndpointSpec(
            "embeddings", "/v1/embeddings", "embeddings", output_tokens=False
        ),
        "responses": EndpointSpec(
            "responses",
            "/v1/responses",
            "responses",
            stream_ends=(
                b"event: response.completed",
                b"event: response.incomplete",
                b"event: response.failed",
            ),
            output=HintedOutput(b'.delta"', rb'"type":\s*"response\.[a-z_.]+\.delta"'),
            usage_in_response=True,
            deployment_scoped=False,
        ),
        # A WebSocket session (router.upstream.wsrelay), not an HTTP stream.
        "realtime": EndpointSpec("realtime", "/v1/realtime", "realtime"),
    }
)
"""Every endpoint, by name; the config's ``endpoints`` lists name these."""
ENDPOINT_NAMES: tuple[Endpoint, ...] = tuple(ENDPOINTS)
