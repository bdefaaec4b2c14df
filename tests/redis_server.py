"""A private redis-server for one test session: never the shared one on 6379.

``RedisServer`` can be stopped and started again on the same port, so tests can take Redis
away and bring it back (with an empty script cache, as a real restart has). With
``cluster=True`` it is a Redis Cluster node (``cluster_enabled:1``, no slots assigned): enough
for a test that the router refuses one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` subprocess on 127.0.0.1, no persistence."""

    def __init__(self, port: int | None = None, *, cluster: bool = False) -> None:
        self.port = port or free_port()
        self.cluster = cluster
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        # A cluster node writes its nodes.conf: into a directory of its own, never the cwd.
        self._dir = tempfile.TemporaryDirectory(prefix="sy-redis-") if cluster else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        state = "running" if self._proc is not None else "stopped"
        return f"<RedisServer :{self.port} {state}>"

    def start(self) -> None:
        if self._proc is not None:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        if self._dir is not None:
            nodes = f"{self._dir.name}/nodes-{self.port}.conf"
            args += ["--cluster-enabled", "yes", "--cluster-config-file", nodes]
            # The bus port defaults to port + 10000, past 65535 for a high free port.
            args += ["--cluster-port", str(free_port())]
            args += ["--dir", self._dir.name]
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: gone at once, no shutdown, as a crashed or OOM-killed Redis."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()
        self._log.close()
        if self._dir is not None:
            self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        try:
            self.start()
        except BaseException:
            self.close()  # no leaked log file or directory when the server never came up
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"redis-server exited:\n{self._output()}")
            if _pings(self.port):
                return
            time.sleep(0.01)  # polling for readiness, bounded by the deadline
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING in {START_TIMEOUT}s")

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server() -> Iterator[str]:
    """A running private server's URL, for the duration of the block."""
    with RedisServer() as server:
        yield server.url


def wait_until_pings(port: int, timeout: float = START_TIMEOUT) -> None:
    """Poll (bounded) until a Redis on ``port`` answers PING."""
    deadline = time.monotonic() + timeout
    while not _pings(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no Redis answered PING on {port} in {timeout}s")
        time.sleep(0.01)  # polling for readiness, bounded by the deadline
