"""Limit bounds at the two validating doors, without a process: config and admin API bodies."""

from __future__ import annotations

import pytest

from router.auth.key_fields import key_fields
from router.config import LimitsConfig, RedisConfig
from router.errors import InvalidRequest
from router.limits.types import MAX_LIMITS, MAX_PER_MINUTE


def test_the_bounds_fit_the_lua_scripts_exact_integers() -> None:
    assert max(MAX_LIMITS.values()) < 2**53 / 1000  # room for the refill's fraction
    assert MAX_LIMITS == {"rpm": MAX_PER_MINUTE, "tpm": MAX_PER_MINUTE, "concurrency": 10**6}


@pytest.mark.parametrize("name", ["rpm", "tpm", "concurrency"])
def test_config_takes_0_to_the_bound(name: str) -> None:
    for value in (0, MAX_LIMITS[name], None):
        assert getattr(LimitsConfig.model_validate({name: value}), name) == value
    for value in (-1, MAX_LIMITS[name] + 1, 2**64 - 1):
        with pytest.raises(ValueError, match=name):
            LimitsConfig.model_validate({name: value})


@pytest.mark.parametrize("name", ["rpm", "tpm", "concurrency"])
def test_admin_bodies_take_0_to_the_bound(name: str) -> None:
    for value in (0, MAX_LIMITS[name], None):
        assert key_fields({"limits": {name: value}}, partial=True) == {name: value}
    for value in (-1, MAX_LIMITS[name] + 1):
        with pytest.raises(InvalidRequest) as caught:
            key_fields({"limits": {name: value}}, partial=True)
        assert caught.value.param == f"limits.{name}"
        assert f"from 0 to {MAX_LIMITS[name]}, or null" in caught.value.message


def test_redis_pool_size_is_bounded() -> None:
    assert RedisConfig(url="redis://h").max_connections == 50
    for bad in (0, 1, 10_001):
        with pytest.raises(ValueError, match="max_connections"):
            RedisConfig(url="redis://h", max_connections=bad)
