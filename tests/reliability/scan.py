"""What every reliability test checks in what the router produced: no secret, no traceback.

The suite feeds it every log line, every scraped metric and every body a client received.
A secret counts as leaked if any 12-character slice of it shows up, so a secret cut short or
embedded in a longer string is caught too.
"""

from __future__ import annotations

from collections.abc import Iterable

_SLICE = 12


def _slices(secret: str) -> set[str]:
    if len(secret) <= _SLICE:
        return {secret}
    return {secret[i : i + _SLICE] for i in range(len(secret) - _SLICE + 1)}


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """Each text that holds a slice of a secret, shortened for the failure message."""
    needles = set().union(*(_slices(secret) for secret in secrets if secret))
    return [text[:200] for text in texts if any(needle in text for needle in needles)]


def tracebacks(texts: Iterable[str]) -> list[str]:
    """Each text that carries a Python traceback."""
    return [text[:200] for text in texts if "Traceback (most recent call last)" in text]


def assert_clean(texts: Iterable[str], secrets: Iterable[str]) -> None:
    """No secret and no traceback anywhere in ``texts``."""
    collected = list(texts)
    found = leaks(collected, secrets)
    assert not found, f"{len(found)} texts leak a secret, e.g. {found[:3]}"
    traced = tracebacks(collected)
    assert not traced, f"{len(traced)} tracebacks, e.g. {traced[:3]}"
