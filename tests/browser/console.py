"""What a page wrote to its console, so a test can insist it wrote no error.

Chromium reports every HTTP error answer a page receives as a console error ("Failed to load
resource: … status of 401"), the ones the page handles on purpose included. A test that provokes
one says so with :meth:`Console.allow`; any other error, and every uncaught exception, fails it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Error

HTTP_ERROR = "Failed to load resource: the server responded with a status of "


@dataclass
class Console:
    errors: list[str] = field(default_factory=list)
    allowed: set[tuple[int, str]] = field(default_factory=set)

    def allow(self, status: int, path: str) -> None:
        """The page may get ``status`` from ``path``: an API error it shows in words."""
        self.allowed.add((status, path))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not self._is_allowed(message):
            self.errors.append(f"{message.text} ({message.location['url']})")

    def on_page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error}")

    def _is_allowed(self, message: ConsoleMessage) -> bool:
        if not message.text.startswith(HTTP_ERROR):
            return False
        status = int(message.text.removeprefix(HTTP_ERROR).split()[0])
        return (status, urlsplit(message.location["url"]).path) in self.allowed
