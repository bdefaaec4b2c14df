"""Browser tests: headless Debian Chromium, driven by Playwright, against a real router process.

Playwright's sync API runs its own event loop, so the tests are plain functions (pytest-asyncio
leaves them alone) and Playwright lives for this package only, before any asyncio test runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from tests.browser.console import Console
from tests.functional.conftest import UPSTREAM_KEY_A, make_config
from tests.functional.fake_process import fake_upstream
from tests.functional.router_process import REPO_ROOT, RouterProcess, router_process

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is not used
ADMIN_KEY = "sy-admin-browser-key-0123456789abcdef"
ARTIFACTS = REPO_ROOT / "artifacts"
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=375, height=740)
TIMEZONE = "America/New_York"  # not UTC, so the page's local-time conversions are exercised

expect.set_options(timeout=10_000)  # two shared cores: a page can take a moment


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def fake() -> Iterator[str]:
    """One fake upstream (a real process) serving ``gpt-4o``; its base URL."""
    with fake_upstream("fake-a", api_key=UPSTREAM_KEY_A) as url:
        yield url


RouterStarter = Callable[..., RouterProcess]


@pytest.fixture
def start_router(fake: str, tmp_path: Path) -> Iterator[RouterStarter]:
    """Start a router over the fake; its admin API is off when ``admin_key`` is None."""
    with ExitStack() as stack:
        started: list[RouterProcess] = []

        def start(admin_key: str | None = ADMIN_KEY) -> RouterProcess:
            upstream = {"name": "fake-a", "url": f"{fake}/v1", "api_key": UPSTREAM_KEY_A}
            admin = {} if admin_key is None else {"admin": {"key": admin_key}}
            config = make_config({"gpt-4o": {"backends": [upstream]}}, **admin)
            directory = tmp_path / f"router{len(started)}"
            directory.mkdir()
            started.append(stack.enter_context(router_process(config, directory)))
            return started[-1]

        yield start


@pytest.fixture
def router(start_router: RouterStarter) -> RouterProcess:
    return start_router()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def viewport() -> ViewportSize:
    return DESKTOP


@pytest.fixture
def page(
    browser: Browser, console: Console, viewport: ViewportSize, start_router: RouterStarter
) -> Iterator[Page]:
    """A fresh browser context (no storage shared between tests) that may use the clipboard;
    closed before the test's routers stop (``start_router``), so no late request fails.

    Fails the test if the page wrote an error to its console that the test did not expect.
    """
    context = browser.new_context(
        viewport=viewport,
        permissions=["clipboard-read", "clipboard-write"],
        locale="en-US",
        timezone_id=TIMEZONE,
    )
    page = context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    yield page
    context.close()
    assert not console.errors, "console errors:\n" + "\n".join(console.errors)
