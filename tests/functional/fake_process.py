"""Start the fake upstream as a real subprocess and hand back its base URL.

Synchronises on the ``READY http://...`` line the fake prints once listening: no sleeps.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 15.0
ACCOUNT_OPTIONS = frozenset(
    {
        "rpm",
        "tpm",
        "quota_headers",
        "store_limit",
        "background_seconds",
        "cache_blocks",
        "cache_min_tokens",
        "cache_block_tokens",
    }
)


@contextmanager
def fake_upstream(
    name: str = "fake",
    *,
    api_key: str | None = None,
    models: Sequence[str] | None = None,
    extra_args: Sequence[str] = (),
    **account: int | float | str | None,
) -> Iterator[str]:
    """Run ``python -m benchmarks.fake_upstream`` on 127.0.0.1 and yield "http://127.0.0.1:PORT".

    ``account`` sets the account's options by name: ``rpm``, ``tpm``, ``quota_headers``,
    ``store_limit``, ``background_seconds``, ``cache_blocks``, ``cache_min_tokens``,
    ``cache_block_tokens`` (``rpm=10`` becomes ``--rpm 10``; None leaves the default).
    The process gets SIGTERM on exit (SIGKILL if it lingers).
    """
    args = [sys.executable, "-m", "benchmarks.fake_upstream", "--host", "127.0.0.1"]
    args += ["--port", "0", "--name", name, *extra_args]
    if api_key is not None:
        args += ["--api-key", api_key]
    if models is not None:
        args += ["--models", ",".join(models)]
    for option, value in account.items():
        if option not in ACCOUNT_OPTIONS:
            raise TypeError(f"unknown fake upstream option: {option}")
        if value is not None:
            args += ["--" + option.replace("_", "-"), str(value)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        yield _read_ready(process)
    finally:
        _stop(process)


def _read_ready(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"fake upstream exited early (rc={process.wait()})")
            if line.startswith("READY "):
                return line.split()[1]
    raise RuntimeError(f"fake upstream not READY within {READY_TIMEOUT}s")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
