"""Load and validate ``config.yaml`` in three passes, each reporting every problem with its path.

1. YAML, with duplicate mapping keys rejected (PyYAML silently keeps the last one);
2. ``${VAR}`` / ``${VAR:-default}`` interpolation in string values, after parsing, so a value
   from the environment can never inject YAML structure;
3. the schema (:mod:`router.config.schema`), then cross-references: unique names, known
   strategies, fallbacks that point at configured models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from balancers import STRATEGIES
from router.config.schema import Config

DEFAULT_CONFIG = "config.default.yaml"


class ConfigError(Exception):
    """The config is invalid; ``problems`` lists each one as ``path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- pass 1: YAML without duplicate keys ---------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: {exc}"]) from None


# --- pass 2: ${VAR} interpolation ----------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(node, str):
        return _interpolate_str(node, env, path, problems)
    if isinstance(node, dict):
        return {k: _interpolate(v, env, _join(path, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    return node


def _interpolate_str(value: str, env: Mapping[str, str], path: str, problems: list[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set and has no default")
        return ""

    return _VAR.sub(substitute, value)


# --- pass 3: schema and cross-references ---------------------------------------------------


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path or "(top level)"


_MESSAGES = {"extra_forbidden": "unknown key", "missing": "required"}


def _schema_problems(exc: ValidationError) -> list[str]:
    errors = exc.errors(include_url=False, include_input=False)
    # A list whose only item failed also reports "too short"; the item's own error says it all.
    deeper = {err["loc"][:n] for err in errors for n in range(len(err["loc"]))}
    problems = []
    for err in errors:
        if err["type"] == "too_short" and err["loc"] in deeper:
            continue
        message = _MESSAGES.get(err["type"], err["msg"]).removeprefix("Value error, ")
        problems.append(f"{_loc_to_path(err['loc'])}: {message}")
    return problems


def _reference_problems(config: Config) -> list[str]:
    problems: list[str] = []
    for model_id, model in config.models.items():
        backend_names: dict[str, str] = {}
        where = f"models.{model_id}"
        if model.strategy not in STRATEGIES:
            valid = ", ".join(sorted(STRATEGIES))
            problems.append(f"{where}.strategy: unknown strategy {model.strategy!r} ({valid})")
        for i, fallback in enumerate(model.fallbacks):
            if fallback not in config.models or fallback == model_id:
                problems.append(f"{where}.fallbacks[{i}]: {fallback!r} is not another model")
        for i, backend in enumerate(model.backends):
            if backend.name in backend_names:
                first = backend_names[backend.name]
                problems.append(f"{where}.backends[{i}].name: duplicate name (first at {first})")
            backend_names.setdefault(backend.name, f"{where}.backends[{i}]")
    problems += _key_problems(config)
    return problems


def _key_problems(config: Config) -> list[str]:
    problems: list[str] = []
    names: set[str] = set()
    secrets: set[str] = set()
    for i, key in enumerate(config.keys):
        if key.name in names:
            problems.append(f"keys[{i}].name: duplicate name {key.name!r}")
        if key.key.get_secret_value() in secrets:
            problems.append(f"keys[{i}].key: the same key is listed twice")
        names.add(key.name)
        secrets.add(key.key.get_secret_value())
    return problems


def parse_config(text: str, env: Mapping[str, str], source: str = "config") -> Config:
    """Validate config text; raise :class:`ConfigError` listing every problem."""
    raw = _parse_yaml(text, source)
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: expected a mapping at the top level"])
    problems: list[str] = []
    raw = _interpolate(raw, env, "", problems)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(problems + _schema_problems(exc)) from None
    problems += _reference_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path | None, env: Mapping[str, str]) -> Config:
    """Load ``path``, or the embedded default (the demo pools) when ``path`` is None."""
    if path is None:
        text = resources.files("router").joinpath(DEFAULT_CONFIG).read_text("utf-8")
        return parse_config(text, env, f"(embedded {DEFAULT_CONFIG})")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_config(text, env, str(path))
