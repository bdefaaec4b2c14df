"""``POST /v1/embeddings`` (and the Azure deployment path): deterministic fake vectors.

Each input item maps to a vector derived from sha256 of the item, so equal inputs embed equally
across runs and instances. Values are k/32768 for a 16-bit k: exact in float32, so the base64
form (little-endian float32, what the SDK asks for by default) decodes to the very floats the
JSON form carries.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import orjson
from aiohttp import web

from benchmarks.fake_upstream.call import Call
from benchmarks.fake_upstream.wire import ApiError, count_words

DEFAULT_DIMENSIONS = 8
_MAX_DIMENSIONS = 65_536


async def create_embeddings(call: Call) -> web.StreamResponse:
    items = _items(call.body.get("input"))
    dimensions = call.body.get("dimensions", DEFAULT_DIMENSIONS)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise ApiError(400, "'dimensions' must be an integer.", param="dimensions")
    if not 1 <= dimensions <= _MAX_DIMENSIONS:
        raise ApiError(400, f"'dimensions' must be in [1, {_MAX_DIMENSIONS}].", param="dimensions")
    as_base64 = call.body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _encode(vector(item, dimensions), as_base64),
        }
        for index, item in enumerate(items)
    ]
    tokens = max(sum(_tokens(item) for item in items), 1)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return await call.send_json(
        {"object": "list", "data": data, "model": call.model, "usage": usage}
    )


def prompt_estimate(body: dict[str, Any]) -> int:
    """The tokens the quota charges at admission: the input's words or token ids."""
    try:
        return max(sum(_tokens(item) for item in _items(body.get("input"))), 1)
    except ApiError:
        return 1


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """The fake embedding of one input item: ``dimensions`` values in [-1, 1)."""
    key = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = b"".join(
        hashlib.sha256(key + block.to_bytes(4, "little")).digest()
        for block in range((dimensions + 15) // 16)
    )
    return [(k - 32768) / 32768 for (k,) in struct.iter_unpack("<H", raw[: dimensions * 2])]


def _encode(values: list[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def _items(raw: object) -> list[Any]:
    """One item per embedding: a string, a token list, or a list of either."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(_is_token(value) for value in raw):
        return [raw]
    if isinstance(raw, list) and raw and all(_is_item(value) for value in raw):
        return raw
    raise ApiError(
        400, "'input' must be a string, an array of strings or an array of tokens.", param="input"
    )


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_item(value: object) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and bool(value) and all(_is_token(token) for token in value)


def _tokens(item: str | list[int]) -> int:
    return count_words(item) if isinstance(item, str) else len(item)
