"""Strict checks of key fields, from admin API bodies and the `keys` CLI alike: every problem is a
400 whose ``param`` names the field.

Unknown fields are refused rather than ignored (a misspelt ``expires_at`` must not silently
create a key that never expires), and types are exact: ``true`` is not a number, ``1.5`` is not
a limit. The messages follow OpenAI's wording ("Invalid type for 'x': expected …") and never
echo a value, so a secret pasted into the wrong field is not reflected back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from balancers.fairqueue import PRIORITIES
from router.auth.records import LIMIT_FIELDS
from router.auth.service import DEFAULT_GRACE_SECONDS
from router.errors import InvalidRequest, wrong_type
from router.limits.types import MAX_LIMITS

KEY_FIELDS = frozenset({"name", "models", "limits", "expires_at", "priority"})
ROTATE_FIELDS = frozenset({"grace_seconds"})
MAX_NAME_LENGTH = 200


def key_fields(payload: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """A create (``partial=False``: ``name`` required) or patch body, as :class:`KeyService`
    keywords: ``name``, ``models``, ``expires_at``, ``priority``, and ``rpm``/``tpm``/
    ``concurrency`` for the limits given (a patch changes only the limits it names; ``null``
    lifts one)."""
    _no_unknown(payload, KEY_FIELDS, prefix="")
    if not partial and "name" not in payload:
        raise InvalidRequest(
            "Missing required parameter: 'name'.", param="name", code="missing_required_parameter"
        )
    fields = {name: _CHECKS[name](payload[name], name) for name in _CHECKS if name in payload}
    if "limits" in payload:
        fields.update(_limits(payload["limits"]))
    return fields


def grace_seconds(payload: Mapping[str, Any]) -> float:
    """The ``grace_seconds`` of a rotate body: a number >= 0, by default a day."""
    _no_unknown(payload, ROTATE_FIELDS, prefix="")
    value = payload.get("grace_seconds", DEFAULT_GRACE_SECONDS)
    if not _is_number(value):
        raise wrong_type("grace_seconds", "a number", value)
    if value < 0:
        raise _invalid("grace_seconds", "expected a number of seconds, 0 or more")
    return float(value)


def _name(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    if not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise _invalid(param, f"expected 1 to {MAX_NAME_LENGTH} characters, not all blank")
    return value


def _models(value: object, param: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise wrong_type(param, "an array of strings", value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise wrong_type(f"{param}[{i}]", "a string", item)
        if not item:
            raise _invalid(f"{param}[{i}]", "expected a model name or pattern, not ''")
    if not value:
        raise _invalid(param, 'expected at least one model pattern (["*"] allows every model)')
    return tuple(value)


def _expires_at(value: object, param: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise wrong_type(param, "a unix time in seconds, or null", value)
    if value < 0:
        raise _invalid(param, "expected a unix time in seconds, 0 or more")
    return float(value)


def _priority(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    if value not in PRIORITIES:
        raise _invalid(param, f"expected one of {', '.join(PRIORITIES)}")
    return value


_CHECKS: dict[str, Callable[[object, str], object]] = {
    "name": _name,
    "models": _models,
    "expires_at": _expires_at,
    "priority": _priority,
}


def _limits(value: object) -> dict[str, int | None]:
    if not isinstance(value, dict):
        raise wrong_type("limits", "an object", value)
    _no_unknown(value, frozenset(LIMIT_FIELDS), prefix="limits.")
    limits: dict[str, int | None] = {}
    for name in LIMIT_FIELDS:
        if name not in value:
            continue
        limit = value[name]
        if limit is not None and not (isinstance(limit, int) and not isinstance(limit, bool)):
            raise wrong_type(f"limits.{name}", "an integer, or null", limit)
        if limit is not None and not 0 <= limit <= MAX_LIMITS[name]:
            expected = f"expected an integer from 0 to {MAX_LIMITS[name]}, or null (no limit)"
            raise _invalid(f"limits.{name}", expected)
        limits[name] = limit
    return limits


def _no_unknown(payload: Mapping[str, Any], known: frozenset[str], *, prefix: str) -> None:
    unknown = sorted(payload.keys() - known)
    if unknown:
        # OpenAI's wording for a field it does not know.
        raise InvalidRequest(
            f"Unrecognized request argument supplied: {prefix}{unknown[0]}",
            param=f"{prefix}{unknown[0]}",
            code="unknown_parameter",
        )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _invalid(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid '{param}': {expected}.", param=param, code="invalid_value")
