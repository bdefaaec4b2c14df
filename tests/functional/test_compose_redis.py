"""The shipped compose file runs Redis so that it keeps the API keys across a restart.

The README promises it (AOF on a volume); this runs Redis with the compose file's own command,
on a free port and a directory of the test's, and asks the server what it keeps.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis
import yaml

from tests.redis_server import free_port, wait_until_pings

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def test_compose_redis_appends_every_write_to_a_volume(tmp_path: Path) -> None:
    service = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]
    assert any(volume.endswith(":/data") for volume in service["volumes"])  # the AOF's home
    command = [shutil.which(service["command"][0]) or "redis-server", *service["command"][1:]]
    port = free_port()
    args = [*command, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_pings(port)
        client = redis.Redis(port=port)
        try:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            client.set("sy:probe", "1")
            assert client.info("persistence")["aof_enabled"] == 1
        finally:
            client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
