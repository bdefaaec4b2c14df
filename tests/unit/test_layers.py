"""The router's parts import one another one way only, and the key CLI stays off the proxy path.

A part is a top-level module or package of ``router/`` (``routing``, ``upstream``, ``metrics``,
``auth``, ``limits``, ``edge``, ``appkeys``, ``handlers``, ``config`` ...) or ``balancers``. The
graph between parts is read from the source with :mod:`ast`, so a cycle fails here before it
fails at import time (Go refuses import cycles outright, for the same reason: a newcomer can read
the layers bottom-up).
"""

from __future__ import annotations

import ast
import graphlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _part(module: str) -> str | None:
    """The part ``module`` belongs to, or None for modules outside the router."""
    head, _, rest = module.partition(".")
    if head == "balancers":
        return "balancers"
    if head != "router":
        return None
    return rest.partition(".")[0] or "router"


def _module_name(path: Path) -> tuple[str, str]:
    """``path``'s dotted name, and the package its relative imports start from."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        name = ".".join(parts[:-1])
        return name, name
    name = ".".join(parts)
    return name, name.rpartition(".")[0]


def _imported(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        module = ".".join([*base, node.module] if node.module else base)
        return [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return []


Graph = dict[str, dict[str, str]]
"""part → {imported part: one module of the part that imports it}"""


def import_graph() -> Graph:
    """An edge a → b when a module of part a imports one of b (under TYPE_CHECKING too)."""
    graph: Graph = {}
    for path in sorted([*ROOT.glob("router/**/*.py"), *ROOT.glob("balancers/**/*.py")]):
        name, package = _module_name(path)
        source = _part(name)
        assert source is not None
        edges = graph.setdefault(source, {})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in map(_part, _imported(node, package)):
                if target is not None and target != source:
                    edges.setdefault(target, name)
    return graph


def test_the_graph_sees_the_parts() -> None:
    graph = import_graph()
    assert {"routing", "upstream", "metrics", "auth", "limits", "edge", "config"} <= set(graph)
    assert "balancers" in graph["routing"]  # the walk sees real imports
    assert "limits" in graph["config"]  # and relative ones


def test_no_import_cycle_between_the_routers_parts() -> None:
    graph = import_graph()
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1][::-1]  # graphlib lists it against the edges
        via = [graph[a][b] for a, b in itertools.pairwise(cycle)]
        raise AssertionError(f"import cycle {' → '.join(cycle)} (via {', '.join(via)})") from None


def test_pure_layers_import_no_router_part_above_them() -> None:
    graph = import_graph()
    assert set(graph["balancers"]) == set()
    assert set(graph["limits"]) <= {"outcomes"}
    assert set(graph["config"]) <= {"balancers", "limits", "outcomes", "endpoints"}
    assert set(graph["endpoints"]) == set(graph["outcomes"]) == set()


_PROXY_PATH = (
    "router.handlers.proxy",
    "router.upstream.forward",
    "router.upstream.backend",
    "router.routing",
    "router.edge",
    "router.metrics",
    "router.app",
)


_MODEL = "models:\n  m:\n    backends: [{name: b, url: 'http://127.0.0.1:9/v1', api_key: x}]\n"


def _loaded(probe: str, tmp_path: Path, extra_config: str = "") -> set[str]:
    """Run ``probe`` (with a config file's path as its argument) in a fresh interpreter; the
    modules it had loaded at its end (the probe prints them)."""
    config = tmp_path / "config.yaml"
    config.write_text(f"store: {{path: {tmp_path / 'keys.sqlite3'}}}\n{extra_config}{_MODEL}")
    probe += "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    done = subprocess.run(
        [sys.executable, "-c", probe, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_keys_cli_does_not_load_the_proxy_path(tmp_path: Path) -> None:
    """``switchyard keys list`` runs the CLI in a fresh interpreter and reports what it loaded."""
    probe = (
        "import json, sys\n"
        "from router.cli import main\n"
        "assert main(['keys', 'list', '--config', sys.argv[1]]) == 0\n"
    )
    loaded = _loaded(probe, tmp_path)
    assert "router.cli_keys" in loaded  # the probe ran the keys command
    assert not loaded & set(_PROXY_PATH), sorted(loaded & set(_PROXY_PATH))


def test_a_router_without_redis_does_not_load_redis(tmp_path: Path) -> None:
    """The redis package (~7 MiB of an idle router) is imported only where a Redis is
    configured: a router on the embedded store starts, serves, and stops without it."""
    probe = (  # `switchyard serve`, with the server's run() starting and stopping the app
        "import asyncio, json, sys\n"
        "from aiohttp import web\n"
        "import router.server\n"
        "from router.app import create_app\n"
        "async def start(config):\n"
        "    runner = web.AppRunner(create_app(config))\n"
        "    await runner.setup()\n"
        "    await web.TCPSite(runner, '127.0.0.1', 0).start()\n"
        "    await runner.cleanup()\n"
        "router.server.run = lambda config: asyncio.run(start(config))\n"
        "from router.cli import main\n"
        "assert main(['serve', '--config', sys.argv[1]]) == 0\n"
    )
    loaded = _loaded(probe, tmp_path, "keys: [{name: k, key: sk-layers-test-key-0001}]\n")
    assert "router.resources" in loaded  # the probe ran the app's startup
    assert not {m for m in loaded if m == "redis" or m.startswith("redis.")}
