"""Start, pin, wait for and stop the benchmark's processes.

Each process gets its own session (so its process group is its pid) and a log file instead of
a pipe, so a chatty process can never block on a full pipe. :class:`Processes` stops every
process it started, on normal exit, on error and on Ctrl-C: SIGTERM to the group, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_POLL_SECONDS = 0.05
_STOP_GRACE_SECONDS = 5.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live children (nginx's worker), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in (pid, *_children(pid)):
        try:
            stat = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its live children, in KiB (0 if gone)."""
    total = 0
    for each in (pid, *_children(pid)):
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        total += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
            0,
        )
    return total


def _children(pid: int) -> list[int]:
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


def pinned(core: int, argv: Sequence[str]) -> list[str]:
    """``argv`` run on one CPU core only (taskset execs it: the pid stays the same)."""
    return ["taskset", "-c", str(core), *argv]


def http_status(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request to 127.0.0.1:port: (status, body); raises OSError if nobody answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` until it is true; raise if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}"
                )
            try:
                if check():
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(_POLL_SECONDS)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it is still there after the grace time."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(_STOP_GRACE_SECONDS)
        # The leader may be gone while children (nginx workers) live on: kill what is left.
        _signal_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


class Processes:
    """The processes of one benchmark run; a context manager that stops them all on exit."""

    def __init__(self, workdir: Path, cwd: Path) -> None:
        self._workdir = workdir
        self._cwd = cwd
        self._started: list[Process] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        log = self._workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd or self._cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, away from our terminal's ^C
            )
        process = Process(name, popen, log)
        self._started.append(process)
        return process

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
