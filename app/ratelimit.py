"""Per-account rate limits on the expensive endpoints: 429 with Retry-After.

A token bucket per (account, kind): `burst` requests at once, then `rate` a second. Kinds
are "selections" (count, preview) and "jobs" (submission, dry runs included). With Redis
configured the buckets live there (one atomic script a request), so every API process
shares them; without it, or while Redis is unreachable, each process keeps its own.
"""

import asyncio
import math
import threading
import time

from fastapi import Depends, Request

from app import logs
from app.auth import AccountDep
from app.config import Settings
from app.errors import AudienceError, ErrorBody

log = logs.get("audience.ratelimit")

RESPONSES = {
    429: {
        "model": ErrorBody,
        "description": "Too many requests from this account; retry after Retry-After seconds",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before the next request",
                "schema": {"type": "integer"},
            }
        },
    }
}


class RateLimited(AudienceError):
    status_code = 429
    code = "rate_limited"


class LocalBuckets:
    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token; 0 if there was one, else the seconds until there is."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > 100_000:  # forget full buckets of idle accounts
                full = [k for k, (n, t) in self._buckets.items() if n >= self.burst - 1]
                for k in full:
                    del self._buckets[k]
            return wait


# The same bucket as LocalBuckets.take, atomic in Redis.
TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class Limiter:
    def __init__(self, settings: Settings):
        self.rate = settings.rate_limit_per_s
        self.burst = max(1, settings.rate_limit_burst)
        self.local = LocalBuckets(self.rate, self.burst)
        self._redis = None
        self._script = None
        self._redis_url = settings.redis_url
        self._redis_down_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def take(self, key: str) -> float:
        if self._redis_url and time.monotonic() >= self._redis_down_until:
            try:
                return await self._take_redis(key)
            except Exception as exc:  # noqa: BLE001 - Redis trouble: limit locally meanwhile
                log.warning("rate limit falls back to local buckets", error=type(exc).__name__)
                self._redis_down_until = time.monotonic() + 5
        return self.local.take(key)

    async def _take_redis(self, key: str) -> float:
        if self._redis is None:
            from redis import asyncio as aioredis

            self._redis = aioredis.from_url(self._redis_url, socket_timeout=0.5)
            self._script = self._redis.register_script(TAKE)
        assert self._script is not None
        wait = await asyncio.wait_for(
            self._script(keys=[f"audience:rate:{key}"], args=[self.rate, self.burst, time.time()]),
            timeout=1,
        )
        return float(wait)


def _limiter(request: Request) -> Limiter:
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is None:
        limiter = request.app.state.limiter = Limiter(request.app.state.settings)
    return limiter


def limit(kind: str):
    """A dependency: this account's request of `kind`, or 429 with Retry-After."""

    async def check(request: Request, account_id: AccountDep) -> None:
        limiter = _limiter(request)
        if not limiter.enabled:
            return
        wait = await limiter.take(f"{account_id}:{kind}")
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                f"too many {kind} requests for this account; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )

    return Depends(check)
