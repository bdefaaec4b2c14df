"""The account's bookkeeping around one call: quota admission before it, usage after it.

``admit`` charges the quota (or raises its 429) before the fault and the answer; ``usage``
looks the prompt up in the prefix cache, settles the quota with what the answer really used,
and adds both to ``/_fake/stats``. Endpoints without a prompt (models, stored objects) skip both.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from benchmarks.fake_upstream.state import CONTEXT, STATE
from benchmarks.fake_upstream.wire import ApiError, count_words


def admit(request: web.Request, model: str, estimate: int) -> None:
    """Charge one request and ``estimate`` tokens; the answer will carry the quota headers."""
    state = request.app[STATE]
    if state.quota is None:
        return
    try:
        headers = state.quota.admit(model, f"org-{state.config.name}", estimate)
    except ApiError as err:
        state.refused[err.type] += 1
        raise
    request[CONTEXT].quota_headers = headers


def usage(
    request: web.Request, turns: Sequence[tuple[str, str]], estimate: int, completion: int
) -> tuple[int, int]:
    """(prompt tokens, cached tokens) of an answer whose prompt is ``turns`` ((role, text) of
    each message) and whose output is ``completion`` tokens; settles the quota and counts both.
    """
    state = request.app[STATE]
    prompt_tokens = max(sum(count_words(text) for _, text in turns), 1)
    cached = 0
    if state.prefix_cache is not None:
        cached = state.prefix_cache.lookup_and_insert(role_tokens(turns))
    if state.quota is not None:
        state.quota.settle(prompt_tokens + completion - estimate)
    state.note_usage(prompt_tokens, cached, completion)
    return prompt_tokens, cached


def role_tokens(turns: Sequence[tuple[str, str]]) -> list[str]:
    """The prompt as the prefix cache sees it: each word, tagged with its message's role so
    that the same words said by another role are another prefix."""
    return [f"{role}:{word}" for role, text in turns for word in text.split()]
