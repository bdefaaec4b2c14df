"""``switchyard demo``: two local fake backends and the router in front of them.

The fakes are real processes (``benchmarks.fake_upstream``) that answer from their input and say
who answered, so the weighted 3:1 split of ``gpt-4o`` is visible in every reply.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import ExitStack

from router.config import load_config
from router.server import run

# name, port, the key the fake demands, the variable config.default.yaml reads its URL from
_FAKES = (
    ("fake-a", 9101, "fake-upstream-key-a", "SWITCHYARD_FAKE_A"),
    ("fake-b", 9102, "fake-upstream-key-b", "SWITCHYARD_FAKE_B"),
)

_BANNER = """
Switchyard demo is starting.
  base URL : {base}
  API key  : {key}
  models   : {models}
  admin key: {admin}   (for /admin/keys; new each run unless SWITCHYARD_ADMIN_KEY is set)
  API keys : {root}/settings/api-keys   (sign in with the admin key)
  metrics  : {root}/metrics

  from openai import OpenAI
  client = OpenAI(base_url="{base}", api_key="{key}")
  reply = client.chat.completions.create(
      model="gpt-4o", messages=[{{"role": "user", "content": "Hello!"}}])
  print(reply.choices[0].message.content)   # "fake-a says: Hello!" (3 in 4) or fake-b

Ctrl-C stops the router and both fakes.
"""


def _start_fake(name: str, port: int, key: str) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.fake_upstream",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--name",
        name,
        "--api-key",
        key,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert process.stdout is not None
    line = process.stdout.readline()  # the fake prints READY <url> once it listens
    if not line.startswith("READY"):
        process.kill()
        raise SystemExit(f"fake backend {name} did not start on port {port}")
    return process


def run_demo(port: int) -> int:
    env = {**os.environ, "SWITCHYARD_PORT": str(port)}
    env.setdefault("SWITCHYARD_ADMIN_KEY", secrets.token_urlsafe(24))
    for _, fake_port, _, variable in _FAKES:
        env.setdefault(variable, f"http://127.0.0.1:{fake_port}/v1")
    config = load_config(None, env)
    with ExitStack() as stack:
        for name, fake_port, key, _ in _FAKES:
            fake = _start_fake(name, fake_port, key)
            stack.callback(fake.wait, 10)
            stack.callback(fake.terminate)
        key = config.keys[0].key.get_secret_value()
        root = f"http://{config.server.host}:{config.server.port}"
        base = f"{root}/v1"
        admin = env["SWITCHYARD_ADMIN_KEY"]
        models = ", ".join(config.models)
        banner = _BANNER.format(root=root, base=base, key=key, models=models, admin=admin)
        print(banner, flush=True)
        run(config)
    return 0
