"""Where a stored response or conversation lives, and whose it is.

OpenAI keeps a response (and a conversation) in the account that made it: a follow-up
(``previous_response_id``, ``conversation``), a retrieve, a delete, a cancel or an
``input_items`` only works there. The router records each id's :class:`Home` (the model and
backend that made it, and the router key that owns it) in the store the keys live in, with a
TTL: Redis when configured (so every router process and host sees it), else a SQLite file beside
the keys (every process of the host). Both survive a router restart.

Why a record and not the home encoded in the id (LiteLLM's way): ids stay OpenAI's, byte for
byte, so a client, a log or the provider's dashboard can match them, and a backend renamed or
removed from the config fails with a clear error instead of a mangled id.
"""

from __future__ import annotations

from router.homes.open import open_homes
from router.homes.record import Home, HomeStore, valid_id

__all__ = ["Home", "HomeStore", "open_homes", "valid_id"]
