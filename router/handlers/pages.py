"""The web pages: ``/`` (home) and ``/settings/api-keys``, static files from ``router/web/``.

No build step: the pages are plain HTML, CSS and ES modules that drive the admin API from the
browser with the admin key the user types in. The files are read once, when the app is built
(a few kilobytes; no file I/O per request), and served from memory with a strong ``ETag`` and
``Cache-Control: no-cache``: the names carry no content hash, so a browser revalidates each
time and gets a bodyless 304 while nothing changed (GitHub serves its un-hashed pages alike).

Every answer carries a strict Content-Security-Policy: only this origin's own scripts, styles
and API, no inline code, no frames, and Trusted Types so no string ever becomes HTML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath

from aiohttp import web

from router.edge import Handler, edge

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",  # RFC 9239; module scripts need a JavaScript type under nosniff
    ".svg": "image/svg+xml",
}
PAGES = {"/": "index.html", "/settings/api-keys": "api-keys.html"}
ASSET_PREFIX = "/web/"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file, ready to send."""

    name: str
    body: bytes
    content_type: str
    etag: str

    def __repr__(self) -> str:
        return f"<Asset {self.name} {self.content_type} {len(self.body)} bytes>"


def load_assets(directory: Traversable) -> dict[str, Asset]:
    """Every file of a known type in ``directory``, by name."""
    assets: dict[str, Asset] = {}
    for entry in directory.iterdir():
        suffix = PurePosixPath(entry.name).suffix
        if entry.is_file() and suffix in CONTENT_TYPES:
            body = entry.read_bytes()
            etag = hashlib.sha256(body).hexdigest()[:32]
            assets[entry.name] = Asset(entry.name, body, CONTENT_TYPES[suffix], etag)
    return assets


def serve(asset: Asset) -> Handler:
    """A handler answering with ``asset``, or 304 when the browser's copy is current."""

    async def handle(request: web.Request) -> web.Response:
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        if _is_current(request, asset.etag):
            response = web.Response(status=304, headers=headers)
        else:
            response = web.Response(
                body=asset.body, content_type=asset.content_type, headers=headers
            )
            if asset.content_type.startswith("text/"):
                response.charset = "utf-8"
        response.etag = asset.etag
        return response

    return handle


def _is_current(request: web.Request, etag: str) -> bool:
    # If-None-Match compares weakly (RFC 9110 §13.1.2): a W/ tag matches its strong twin.
    tags = request.if_none_match
    return tags is not None and any(tag.value in (etag, "*") for tag in tags)


def add_routes(app: web.Application) -> None:
    """Serve the pages at their paths and every other file under ``/web/``."""
    assets = load_assets(resources.files("router") / "web")
    for path, name in PAGES.items():
        app.router.add_get(path, edge(serve(assets[name])))
    for name, asset in sorted(assets.items()):
        if not name.endswith(".html"):
            app.router.add_get(ASSET_PREFIX + name, edge(serve(asset)))
