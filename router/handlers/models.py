"""``GET /v1/models`` and ``GET /v1/models/{model}``: the models this key may use."""

from __future__ import annotations

from aiohttp import web

from router.appkeys import METRICS, PROCESS, ROUTES
from router.edge import edge
from router.errors import ModelNotFound
from router.handlers.common import authenticate, json_response


def _model_object(model: str, created: int) -> dict[str, object]:
    return {"id": model, "object": "model", "created": created, "owned_by": "switchyard"}


async def list_models(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    created = request.app[PROCESS].started_at
    data = [
        _model_object(model, created)
        for model in request.app[ROUTES].models()
        if principal.allows(model)
    ]
    return json_response({"object": "list", "data": data})


async def retrieve_model(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    model = request.match_info["model"]
    if model not in request.app[ROUTES] or not principal.allows(model):
        raise ModelNotFound(model)
    return json_response(_model_object(model, request.app[PROCESS].started_at))


def add_routes(app: web.Application) -> None:
    record = app[METRICS].request_done
    app.router.add_get("/v1/models", edge(list_models, "models", record))
    # Model IDs may contain slashes (meta-llama/Llama-3.1-8B), as fine-tune IDs hold colons.
    app.router.add_get("/v1/models/{model:.+}", edge(retrieve_model, "models", record))
