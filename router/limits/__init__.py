"""Per-key limits: requests and tokens per minute (token buckets) and concurrent requests.

``bucket`` is the math (pure, time passed in); ``LocalLimiter`` applies it in process and
``RedisLimiter`` (:mod:`router.limits.redis`, imported only with a Redis configured) in one
Lua script shared by every router. Both answer with an
:class:`Admission` carrying OpenAI's ``x-ratelimit-*`` headers.
"""

from router.limits.bucket import BucketSpec, BucketState, Take
from router.limits.headers import format_duration, rate_limit_headers
from router.limits.local import LocalLimiter
from router.limits.types import (
    CONCURRENCY_RETRY_AFTER,
    Account,
    AccountLevel,
    Admission,
    Kind,
    Limiter,
    LimiterUnavailable,
    Limits,
)

__all__ = [
    "CONCURRENCY_RETRY_AFTER",
    "Account",
    "AccountLevel",
    "Admission",
    "BucketSpec",
    "BucketState",
    "Kind",
    "Limiter",
    "LimiterUnavailable",
    "Limits",
    "LocalLimiter",
    "Take",
    "format_duration",
    "rate_limit_headers",
]
