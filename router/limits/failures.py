"""What a Redis limit store that is down, unreachable or too slow raises.

Its own module, imported by the Redis-only modules: the rest of the router never imports redis
unless a Redis is configured (see :func:`router.auth.keystore.store_errors`).
"""

from __future__ import annotations

from redis.exceptions import RedisError

# asyncio.timeout raises the builtin TimeoutError; only these make the ``failure`` policy decide.
FAILURES = (TimeoutError, RedisError, OSError)
