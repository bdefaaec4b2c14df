"""Run the router as a real subprocess (``python -m router serve``) on a free port.

Synchronises on the router's ``listening`` log line; a thread drains stderr so the pipe never
fills, and keeps every line for tests that read the access log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 20.0


@dataclass
class RouterProcess:
    process: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    listening: threading.Event = field(default_factory=threading.Event)
    exited: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return out

    def access(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("logger") == "switchyard.access"]

    def wait_access(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The access lines once at least ``count`` are written (the log trails the reply)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.access()) >= count, timeout)
        lines = self.access()
        assert len(lines) >= count, f"expected {count} access lines, got {len(lines)}"
        return lines

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
            if not self.url and '"listening"' in line:
                self.url = orjson.loads(line)["url"]
                self.listening.set()
        with self.changed:
            self.exited.set()
            self.changed.notify_all()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def write_config(config: dict[str, Any], directory: Path) -> Path:
    """Write the config; its embedded key store goes in ``directory`` unless the test set one."""
    config = {"store": {"path": str(directory / "keys.sqlite3")}, **config}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def router_process(
    config: dict[str, Any], directory: Path, *, extra_args: tuple[str, ...] = ()
) -> Iterator[RouterProcess]:
    path = write_config(config, directory)
    args = [sys.executable, "-m", "router", "serve", "--config", str(path), *extra_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    router = RouterProcess(process)
    thread = threading.Thread(target=router._drain, name="router-stderr", daemon=True)
    thread.start()
    try:
        with router.changed:
            router.changed.wait_for(
                lambda: router.listening.is_set() or router.exited.is_set(), READY_TIMEOUT
            )
        if not router.listening.is_set():
            raise RuntimeError("router did not listen:\n" + "".join(router.lines))
        yield router
    finally:
        router.stop()
        thread.join(5)
        if process.stderr is not None:
            process.stderr.close()
