"""A prompt prefix cache per instance, as OpenAI's prompt caching and vLLM's prefix cache work.

Off unless ``--cache-blocks N`` (or ``POST /_fake/prefix_cache``) gives it room. The prompt, as
the fake's tokens (words, each tagged with its message's role), is cut into blocks of
``block_tokens``; block *i* is keyed by a hash chained over blocks 0..i, as vLLM's automatic
prefix caching keys its KV blocks, so a key names a whole prefix, never a block out of place.

A request's ``cached_tokens`` is the length of its longest run of leading blocks already in the
cache, when that run reaches ``min_tokens`` (OpenAI: prompts of 1,024 tokens or more, cached in
128-token increments; both are options so tests can use short prompts). Then every full block of
the prompt is put in the cache, most recently used last; past ``capacity`` blocks the least
recently used go first, so the memory stays bounded, unlike a prefix trie that only grows.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

# OpenAI's documented thresholds: the default when an option does not say otherwise.
OPENAI_MIN_TOKENS = 1024
OPENAI_BLOCK_TOKENS = 128


@dataclass(slots=True)
class PrefixCache:
    """Chained block hashes in LRU order; ``lookup_and_insert`` is the only mutation."""

    capacity: int
    min_tokens: int = OPENAI_MIN_TOKENS
    block_tokens: int = OPENAI_BLOCK_TOKENS
    _blocks: OrderedDict[bytes, None] = field(default_factory=OrderedDict, repr=False)

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup_and_insert(self, tokens: Sequence[str]) -> int:
        """The cached tokens of this prompt; then remember its blocks."""
        keys = self._keys(tokens)
        hits = 0
        for key in keys:
            if key not in self._blocks:
                break
            hits += 1
        for key in keys:
            self._blocks[key] = None
            self._blocks.move_to_end(key)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
        cached = hits * self.block_tokens
        return cached if cached >= self.min_tokens else 0

    def _keys(self, tokens: Sequence[str]) -> list[bytes]:
        size = self.block_tokens
        chain = b""
        keys = []
        for start in range(0, len(tokens) - size + 1, size):
            block = "\x00".join(tokens[start : start + size]).encode()
            chain = hashlib.blake2b(chain + block, digest_size=16).digest()
            keys.append(chain)
        return keys
