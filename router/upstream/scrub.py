"""Keep a backend's own credentials out of what its upstream sends the client.

An upstream's error message is relayed, because the client needs to read "Invalid value for
'temperature'". But an upstream may quote the credential it was sent ("Incorrect API key
provided: sk-abc...xyz"), and that credential is the router's, not the client's. So every
upstream body that is not a success, and every stream or realtime event that reports an error,
passes through :class:`Scrubber` before the client gets it.

What counts as the secret: the backend's ``api_key``, the values of its credential headers
(:func:`secret_values`), each also URL-encoded and in base64. What counts as a leak: any run of
at least :data:`MIN_FRAGMENT` (12) characters of one of those, so a key cut short
("sk-proj-Q8wLz3R..."), or masked in the middle with long ends, is caught as well as the whole
key; a secret shorter than that is matched whole. Twelve is the leak test's own measure
(``tests/reliability/scan.py``). Shorter runs are left: OpenAI's masks show the public prefix
and 4 characters ("sk-proj-****...Y1cA"); 8 to 11 characters of a 40-character random key
leave some 170 bits unknown; and at 8, ordinary words of a human-chosen secret get redacted
("upstream says bye" became "[redacted] says bye" for the key "upstream-secret-key-aaaa").
The run found is replaced by :data:`MARK`.

JSON stays JSON: a JSON body is parsed, its strings scrubbed and the body re-encoded (only when
something was found, so a clean error body is relayed byte for byte); a body that is not JSON is
scrubbed as text. The client's Content-Length follows the new body.

Cost: nothing on the success path. A 2xx JSON body is not scanned (see ``relay``), a stream
chunk or realtime frame is scanned only if :func:`reports_error` (one substring test for a
healthy chat chunk), and a backend with no secret has no scrubber at all. The scan itself is a
regex over every window of every variant: about 10 µs for an error body, so it must stay there.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import orjson

from router.config import BackendConfig

MARK = "[redacted]"
MIN_FRAGMENT = 12
# Header names that carry credentials by convention (RFC 9110's Authorization and
# Proxy-Authorization, Azure's api-key, the common X-Api-Key): secret without being marked.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
_QUOTED = b'"error"'
_NULL = re.compile(rb"\s*:\s*null")


def secret_values(config: BackendConfig) -> tuple[str, ...]:
    """Every credential the router sends this backend: its ``api_key`` and the values of its
    credential headers (the well-known names, and those listed in ``secret_headers``)."""
    secrets: list[str] = []
    if config.api_key is not None:
        secrets.append(config.api_key.get_secret_value())
    marked = CREDENTIAL_HEADERS | {name.lower() for name in config.secret_headers}
    for name, value in config.headers.items():
        if name.lower() in marked:
            secrets.append(value)
            scheme, _, token = value.partition(" ")  # "Bearer xyz", "Basic xyz": xyz alone
            if token and scheme.isalpha():
                secrets.append(token)
    return tuple(secret for secret in secrets if secret)


def reports_error(data: bytes) -> bool:
    """Whether stream bytes may report an error: an ``event: error`` (Responses), or any
    ``"error"`` key or value but a null one (chat's ``{"error": {...}}``, Responses'
    ``response.failed``, realtime's ``{"type": "error"}``). Healthy Responses events carry
    ``"error": null``; healthy chat chunks no ``error`` at all, so they cost one substring test.
    """
    if b"error" not in data:
        return False
    if b"event: error" in data or b"event:error" in data:
        return True
    at = data.find(_QUOTED)
    while at >= 0:
        at += len(_QUOTED)
        if _NULL.match(data, at) is None:
            return True
        at = data.find(_QUOTED, at)
    return False


def _variants(secret: str) -> set[str]:
    """The secret as an upstream could echo it: as is, URL-encoded, base64 (either alphabet)."""
    raw = secret.encode()
    encoded = base64.b64encode(raw).decode()
    return {secret, quote(secret, safe=""), encoded, encoded.rstrip("=")} | {
        base64.urlsafe_b64encode(raw).decode().rstrip("=")
    }


class Scrubber:
    """Replaces every run of a backend's secrets found in text with :data:`MARK`."""

    __slots__ = ("_pattern", "_places", "_variants")

    def __init__(self, secrets: Iterable[str]) -> None:
        variants = sorted(set().union(*(_variants(s) for s in secrets if s)), key=len)
        if not variants:
            raise ValueError("a Scrubber needs at least one secret")
        self._variants = tuple(variants)
        # Every MIN_FRAGMENT-long window of every variant (a short variant whole), and where it
        # sits in which variant, so a hit can be grown to the longest run around it.
        self._places: dict[str, list[tuple[str, int]]] = {}
        for variant in self._variants:
            width = min(MIN_FRAGMENT, len(variant))
            for start in range(len(variant) - width + 1):
                gram = variant[start : start + width]
                self._places.setdefault(gram, []).append((variant, start))
        grams = sorted(self._places, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, grams)))

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Scrubber | None:
        """A scrubber for ``secrets``, or None when there is nothing to hide."""
        kept = [secret for secret in secrets if secret]
        return cls(kept) if kept else None

    def text(self, text: str) -> str:
        """``text`` with every run of a secret replaced by :data:`MARK`."""
        match = self._pattern.search(text)
        if match is None:
            return text
        out: list[str] = []
        pos = 0
        while match is not None:
            start, end = self._grow(text, match.start(), match.end(), pos)
            out.append(text[pos:start])
            out.append(MARK)
            pos = end
            match = self._pattern.search(text, pos)
        out.append(text[pos:])
        return "".join(out)

    def _grow(self, text: str, start: int, end: int, floor: int) -> tuple[int, int]:
        """The longest run of one variant around the hit ``text[start:end]``."""
        best = (start, end)
        for variant, at in self._places[text[start:end]]:
            left = 0
            while start - left > floor and at - left > 0:
                if text[start - left - 1] != variant[at - left - 1]:
                    break
                left += 1
            right, stop = 0, at + (end - start)
            while end + right < len(text) and stop + right < len(variant):
                if text[end + right] != variant[stop + right]:
                    break
                right += 1
            if right + left > (best[1] - best[0]) - (end - start):
                best = (start - left, end + right)
        return best

    def body(self, body: bytes) -> bytes:
        """A whole upstream body: JSON re-encoded with its strings scrubbed, anything else
        scrubbed as text; returned unchanged (the same bytes) when nothing was found."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "surrogateescape")
            cleaned = self.text(text)
            return body if cleaned is text else cleaned.encode("utf-8", "surrogateescape")
        cleaned_json = self._walk(parsed)
        return body if cleaned_json == parsed else orjson.dumps(cleaned_json)

    def events(self, chunk: bytes) -> bytes:
        """Whole SSE events: each ``data:`` line scrubbed as a body of its own."""
        lines = chunk.split(b"\n")
        for index, line in enumerate(lines):
            if not line.startswith(b"data:"):
                continue
            end = -1 if line.endswith(b"\r") else len(line)
            payload = line[5:end].lstrip(b" ")
            head = line[: end - len(payload)]
            lines[index] = head + self.body(payload) + line[end:]
        return b"\n".join(lines)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self._walk(item) for key, item in value.items()}
        return value

    def __repr__(self) -> str:  # never the secrets themselves
        return f"<Scrubber {len(self._variants)} variants>"
