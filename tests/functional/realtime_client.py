"""Clients of the router's /v1/realtime for the tests: the openai SDK and raw aiohttp sockets."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai

from tests.functional.conftest import CLIENT_KEY
from tests.functional.router_process import RouterProcess

KEY_PROTOCOL = "openai-insecure-api-key."


def ws_base(router: RouterProcess) -> str:
    return router.url.replace("http://", "ws://", 1) + "/v1"


def realtime_url(router: RouterProcess, model: str = "gpt-4o") -> str:
    return f"{router.base_url}/realtime?model={model}"


def sdk(router: RouterProcess, key: str = CLIENT_KEY) -> openai.AsyncOpenAI:
    """The async SDK pointed at the router; the beta API dials wss:// unless told the base."""
    return openai.AsyncOpenAI(
        base_url=router.base_url,
        websocket_base_url=ws_base(router),
        api_key=key,
        max_retries=0,
    )


def upgrade_headers(**extra: str) -> dict[str, str]:
    """What a WebSocket client sends to upgrade, for plain HTTP clients that read the refusal."""
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        **extra,
    }


def browser_protocols(key: str = CLIENT_KEY, *, beta: bool = False) -> list[str]:
    """The subprotocols a browser offers: it cannot set an Authorization header."""
    protocols = ["realtime", KEY_PROTOCOL + key]
    return [*protocols, "openai-beta.realtime-v1"] if beta else protocols


def hello_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


@dataclass
class Exchange:
    """One response as the SDK saw it."""

    types: list[str] = field(default_factory=list)
    text: str = ""
    total_tokens: int | None = None


async def converse(connection: Any, text: str) -> Exchange:
    """Send ``text``, ask for a response, collect events until ``response.done``."""
    await connection.conversation.item.create(item=hello_item(text))
    await connection.response.create()
    exchange = Exchange()
    async for event in connection:
        exchange.types.append(event.type)
        if event.type in ("response.output_text.delta", "response.text.delta"):
            exchange.text += event.delta
        if event.type == "response.done":
            exchange.total_tokens = event.response.usage.total_tokens
            return exchange
    raise AssertionError(f"the session ended before response.done: {exchange.types}")


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive()
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = msg.json()
    return data


def rss_kib(pid: int) -> int:
    """Resident memory of a process (``VmRSS``), in KiB."""
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """Highest resident memory a process ever had (``VmHWM``), in KiB."""
    return _status_kib(pid, "VmHWM")


def _status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")
