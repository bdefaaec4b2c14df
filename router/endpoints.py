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
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Endpoint = Literal["chat", "embeddings", "responses", "realtime"]

_NEVER = re.compile(rb"(?!)")


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
    output: re.Pattern[bytes] = _NEVER
    """Matches a streamed event that carries output: the time to first token."""
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
            output=re.compile(
                rb'"(?:content|refusal|arguments|reasoning_content|reasoning)":\s*"[^"]'
            ),
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
            output=re.compile(rb'"type":\s*"response\.[a-z_.]+\.delta"'),
            usage_in_response=True,
            deployment_scoped=False,
        ),
        # A WebSocket session (router.upstream.wsrelay), not an HTTP stream.
        "realtime": EndpointSpec("realtime", "/v1/realtime", "realtime"),
    }
)
"""Every endpoint, by name; the config's ``endpoints`` lists name these."""
ENDPOINT_NAMES: tuple[Endpoint, ...] = tuple(ENDPOINTS)
