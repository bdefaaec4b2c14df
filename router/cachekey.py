"""The prompt-cache key of a request, for ``affinity: prompt`` pools (balancers.affinity).

In order, the first that the request has:

1. ``prompt_cache_key``: the client says which requests share a cache (OpenAI's parameter for
   exactly this);
2. ``user``, else ``safety_identifier``: one end user's requests, usually one conversation's;
3. the stable prefix of the prompt, the part every turn of a conversation repeats:
   - chat: every ``system`` and ``developer`` message, the ``tools``, and the first ``user``
     message;
   - responses: ``instructions``, the ``tools``, and the first item of ``input`` (the string
     itself when ``input`` is one).

Cheap by construction: the request is parsed once already; strings are hashed as they are, and
only the small slices that are not strings (a content parts list, the tools) are encoded again,
never the whole body. None when there is nothing to key on (a request without messages): the
pool's strategy then chooses alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from balancers import key_hash
from router.endpoints import Endpoint

_PREFIX_ROLES = frozenset({"system", "developer"})


def cache_key(endpoint: Endpoint, payload: Mapping[str, Any]) -> int | None:
    """The hash the affinity ring places the request by, or None."""
    for name in ("prompt_cache_key", "user", "safety_identifier"):
        value = payload.get(name)
        if isinstance(value, str) and value:
            return key_hash(name[0].encode() + value.encode())
    if endpoint == "chat":
        parts = _chat_prefix(payload.get("messages"))
    elif endpoint == "responses":
        parts = _responses_prefix(payload)
    else:
        return None
    if not parts:
        return None
    tools = payload.get("tools")
    if tools:
        parts.append(_bytes(tools))
    return key_hash(b"\x00".join(parts))


def _chat_prefix(messages: object) -> list[bytes]:
    parts: list[bytes] = []
    if not isinstance(messages, list):
        return parts
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in _PREFIX_ROLES:
            parts.append(_bytes(message.get("content")))
        elif role == "user":
            parts.append(_bytes(message.get("content")))
            break  # the first user message closes the stable prefix
    return parts


def _responses_prefix(payload: Mapping[str, Any]) -> list[bytes]:
    parts: list[bytes] = []
    instructions = payload.get("instructions")
    if instructions:
        parts.append(_bytes(instructions))
    given = payload.get("input")
    if isinstance(given, list) and given:
        parts.append(_bytes(given[0]))
    elif isinstance(given, str) and given:
        parts.append(given.encode())
    return parts


def _bytes(value: object) -> bytes:
    """A string as its UTF-8 bytes; anything else (content parts, tools) as compact JSON."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    try:
        return orjson.dumps(value)
    except TypeError:  # not JSON (cannot happen for a parsed body): key on its type alone
        return type(value).__name__.encode()
