"""Rate limits per API key: a token bucket per key, over the limit answered with 429.

    CONVEYOR_RATE_LIMIT="100,1000"   requests per second, burst (the default)
    CONVEYOR_RATE_LIMIT="off"        no limit

Each key has a bucket of up to `burst` requests, refilled at `rate` per second. A request
takes one; with the bucket empty it is answered `429` with `{"error": {"code":
"rate_limited", ...}}` and `Retry-After` (whole seconds until a request fits again), before
it reaches authentication or the engine, so a flood costs a dict look-up per request.
Buckets are keyed by the key's hash; the key itself is never kept.

Not limited: requests without a key (they fail authentication, or need none: token callback
URLs, /healthz, /docs) and the worker protocol under /api/v1/workers. A worker's calls follow
the runs it leased (each step of each run is a call) and a refused call would fail a run in
flight; a worker bounds itself by the capacity it leases.

Limits hold per server process: behind several servers a key gets the limit from each.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.engine import hash_key
from conveyor.errors import ConfigError

ENV_VAR = "CONVEYOR_RATE_LIMIT"
_LIMITED_PREFIX = "/api/v1/"
_EXEMPT_PREFIX = "/api/v1/workers/"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`rate` requests per second per key, in bursts of up to `burst`."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0) or self.burst < 1:
            raise ConfigError(
                f"a rate limit needs a rate above 0 and a burst of at least 1, "
                f"got {self.rate:g},{self.burst}"
            )


DEFAULT_RATE_LIMIT = RateLimit(rate=100.0, burst=1000)


def parse_rate_limit(text: str) -> RateLimit | None:
    """`"100,1000"` (requests per second, burst), `"100"` (a burst of one second's worth), or
    `"off"` (None: no limit). ConfigError names the variable and the accepted forms."""
    value = text.strip().lower()
    if value in ("off", "none"):
        return None
    rate_text, _, burst_text = value.partition(",")
    try:
        rate = float(rate_text)
        burst = int(burst_text) if burst_text.strip() else max(1, math.ceil(rate))
        return RateLimit(rate=rate, burst=burst)
    except (ValueError, ConfigError):
        raise ConfigError(
            f"{ENV_VAR}={text!r} is not a rate limit: write 'requests per second,burst' "
            "such as '100,1000', or 'off'"
        ) from None


def rate_limit_from_env(environ: Mapping[str, str] = os.environ) -> RateLimit | None:
    """The limit CONVEYOR_RATE_LIMIT sets, DEFAULT_RATE_LIMIT when it is unset."""
    text = environ.get(ENV_VAR)
    return DEFAULT_RATE_LIMIT if text is None or not text.strip() else parse_rate_limit(text)


class KeyBuckets:
    """A token bucket per key hash. Not thread-safe: the middleware uses it from the event loop."""

    MAX_KEYS = 100_000

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key hash -> (tokens, when counted)

    def take(self, key_hash: str) -> float:
        """Take one request from the key's bucket: 0.0 when it may go, else the seconds until
        one fits again."""
        now = self._clock()
        rate, burst = self.limit.rate, self.limit.burst
        tokens, counted = self._buckets.get(key_hash, (burst, now))
        tokens = min(burst, tokens + (now - counted) * rate)
        if tokens >= 1:
            if key_hash not in self._buckets and len(self._buckets) >= self.MAX_KEYS:
                self._forget_full(now)
            self._buckets[key_hash] = (tokens - 1, now)
            return 0.0
        self._buckets[key_hash] = (tokens, now)
        return (1 - tokens) / rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: a new bucket starts full, so forgetting them changes
        nothing. If every key is busy (a flood of distinct keys), forget them all: that only
        ever lets requests through, never refuses one wrongly."""
        rate, burst = self.limit.rate, self.limit.burst
        self._buckets = {
            k: (t, at) for k, (t, at) in self._buckets.items() if t + (now - at) * rate < burst
        }
        if len(self._buckets) >= self.MAX_KEYS:
            self._buckets.clear()


def _bearer_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            key = credentials.strip()
            return key if scheme.lower() == "bearer" and key else None
    return None


def is_limited(path: str) -> bool:
    """Whether requests to `path` count against their key's limit (see the module docstring)."""
    return path.startswith(_LIMITED_PREFIX) and not path.startswith(_EXEMPT_PREFIX)


class RateLimitMiddleware:
    """Answers 429 to a keyed API request over its key's limit; passes everything else on."""

    def __init__(
        self, app: ASGIApp, limit: RateLimit, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.buckets = KeyBuckets(limit, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_limited(scope["path"]):
            key = _bearer_key(scope)
            wait = self.buckets.take(hash_key(key)) if key else 0.0
            if wait > 0:
                await self._refuse(send, max(1, math.ceil(wait)))
                return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, retry_after: int) -> None:
        limit = self.buckets.limit
        body = json.dumps(
            {
                "error": {
                    "code": "rate_limited",
                    "message": (
                        "too many requests with this API key "
                        f"(the limit is {limit.rate:g} per second, in bursts of {limit.burst}); "
                        f"retry after {retry_after}s"
                    ),
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
