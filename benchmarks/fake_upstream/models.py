"""``GET /v1/models`` and ``GET /v1/models/{id}``: the ids given with ``--models``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from benchmarks.fake_upstream.call import Call
from benchmarks.fake_upstream.state import STATE
from benchmarks.fake_upstream.wire import ApiError

_CREATED = 1_700_000_000  # a fixed timestamp keeps answers byte-identical across runs


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "switchyard-fake"}


async def list_models(call: Call) -> web.StreamResponse:
    models = call.request.app[STATE].config.models
    return await call.send_json({"object": "list", "data": [_model(m) for m in models]})


async def retrieve_model(call: Call) -> web.StreamResponse:
    model_id = call.request.match_info["model_id"]
    if model_id not in call.request.app[STATE].config.models:
        raise ApiError(
            404,
            f"The model `{model_id}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    return await call.send_json(_model(model_id))
