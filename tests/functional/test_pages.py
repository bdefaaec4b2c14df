"""The web pages as HTTP: content types, security headers, caching, and no broken reference.

What the pages do in a browser is tested in ``tests/browser``; this is what any client sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources

import httpx
import pytest

from router.handlers.pages import CSP, PAGES
from tests.functional.conftest import Fake, make_config, two_backend_models
from tests.functional.router_process import router_process

WEB = resources.files("router") / "web"
HTML = "text/html; charset=utf-8"
REFERENCE = re.compile(r'(?:src|href)="(/[^"]*)"')
IMPORT = re.compile(r'from "\./([\w-]+\.js)"')


@pytest.fixture(scope="module")
def http(
    fakes: tuple[Fake, Fake], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    config = make_config(two_backend_models(*fakes))
    with (
        router_process(config, tmp_path_factory.mktemp("pages")) as router,
        httpx.Client(base_url=router.url, timeout=10) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", HTML),
        ("/settings/api-keys", HTML),
        ("/web/style.css", "text/css; charset=utf-8"),
        ("/web/api-keys.js", "text/javascript; charset=utf-8"),
        ("/web/favicon.svg", "image/svg+xml"),
    ],
)
def test_each_file_has_its_type_and_the_security_headers(
    http: httpx.Client, path: str, content_type: str
) -> None:
    response = http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])


def test_the_policy_allows_this_origin_only_and_nothing_inline() -> None:
    directives = dict(part.split(" ", 1) for part in CSP.split("; "))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe" not in CSP


def test_every_file_of_router_web_is_served_as_it_is(http: httpx.Client) -> None:
    paths = {name: path for path, name in PAGES.items()}
    files = [entry for entry in WEB.iterdir() if entry.is_file()]
    assert len(files) >= 10
    for entry in files:
        response = http.get(paths.get(entry.name, f"/web/{entry.name}"))
        assert response.status_code == 200, entry.name
        assert response.content == entry.read_bytes()


def test_every_reference_in_the_pages_and_modules_resolves(http: httpx.Client) -> None:
    references: set[str] = set()
    for path in PAGES:
        references |= set(REFERENCE.findall(http.get(path).text))
    for entry in WEB.iterdir():
        if entry.name.endswith(".js"):
            references |= {f"/web/{name}" for name in IMPORT.findall(entry.read_text())}
    assert "/web/keys-table.js" in references  # imported by api-keys.js
    for reference in sorted(references):
        assert http.get(reference).status_code == 200, reference


def test_a_current_copy_is_a_bodyless_304(http: httpx.Client) -> None:
    first = http.get("/web/style.css")
    etag = first.headers["etag"]
    for tags in (etag, f"W/{etag}", f'"stale", {etag}', "*"):
        again = http.get("/web/style.css", headers={"If-None-Match": tags})
        assert again.status_code == 304, tags
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["content-security-policy"] == CSP
    stale = http.get("/web/style.css", headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == first.content
    # Each file has its own tag.
    assert http.get("/web/api.js").headers["etag"] != etag


def test_head_answers_without_a_body(http: httpx.Client) -> None:
    response = http.head("/settings/api-keys")
    assert response.status_code == 200
    assert response.headers["content-type"] == HTML
    assert response.content == b""


@pytest.mark.parametrize(
    "path", ["/web/nothing.js", "/web/api-keys.html", "/web/", "/settings", "/web/../setup.cfg"]
)
def test_unknown_paths_are_the_routers_404(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_pages_take_get_only(http: httpx.Client) -> None:
    response = http.post("/settings/api-keys", content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
