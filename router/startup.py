"""Why the router cannot start: one exception the CLI turns into a one-line message.

Its own module, with no imports: ``switchyard serve`` catches it before knowing whether a Redis
is configured, and must not import redis to do so (see ``router.resources``).
"""

from __future__ import annotations


class StartupError(Exception):
    """The router cannot start; the message says why in one line (no secret in it)."""
