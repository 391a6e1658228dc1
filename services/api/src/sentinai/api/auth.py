"""Guards of the write routes: API key, read-only mode and a per-client rate limit."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from sentinai.api.settings import ApiSettings

Clock = Callable[[], float]


def key_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no configured key matches nothing."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: int
    clock: Clock = time.monotonic
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, client: str) -> float:
        """0 when allowed, else the seconds until the next token."""
        now = self.clock()
        tokens, then = self._tokens.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate_per_s)
        if tokens < 1:
            self._tokens[client] = (tokens, now)
            return (1 - tokens) / self.rate_per_s
        self._tokens[client] = (tokens - 1, now)
        if len(self._tokens) > 10_000:
            self._tokens.clear()  # bounded memory under address churn; worst case a fresh burst
        return 0.0


class WriteGuard:
    """A FastAPI dependency: read-only first (it says why), then the key, then the rate limit."""

    def __init__(self, settings: ApiSettings, *, clock: Clock = time.monotonic) -> None:
        self.read_only = settings.read_only_mode
        self.key = None if settings.api_key is None else settings.api_key.get_secret_value()
        self.bucket = TokenBucket(settings.write_rate_per_min / 60, settings.write_burst, clock)

    async def __call__(self, request: Request) -> None:
        if self.read_only:
            raise HTTPException(
                403, detail="read-only mode (SENTINAI_READ_ONLY_MODE=true): every write is refused"
            )
        if not self.key:
            raise HTTPException(
                401, detail="no API key is configured (set SENTINAI_API_KEY): writes are refused"
            )
        if not key_matches(request.headers.get("x-api-key"), self.key):
            raise HTTPException(401, detail="missing or wrong x-api-key header")
        client = request.client.host if request.client is not None else "unknown"
        wait = self.bucket.take(client)
        if wait > 0:
            raise HTTPException(
                429,
                detail=f"too many writes from {client}; retry in {wait:.1f}s",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
