"""Guards of the write routes: read-only mode, who the key belongs to, what its role allows, a rate limit."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from sentinai.api.keys import ALLOWED, KeyFileError, KeyStore, Operation, Principal, Role, token_hash
from sentinai.api.settings import ApiSettings
from sentinai.common.identity import identity_key

Clock = Callable[[], float]

READ_ONLY = "read-only mode (SENTINAI_READ_ONLY_MODE=true): every write is refused"

_DOING: dict[Operation, str] = {"approve": "approve", "reject": "reject", "request": "request actions"}


def key_store(settings: ApiSettings) -> KeyStore:
    """The api's keys: the key file's per-person keys and ``SENTINAI_API_KEY`` (principal ``operator``)."""
    env_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return KeyStore(settings.api_keys_file, env_key=env_key or None)


@dataclass(frozen=True)
class KeyProblem:
    """Why a key does not authenticate: the HTTP status and the sentence for the caller."""

    status: int
    detail: str


def no_keys(refused: str) -> str:
    return (
        f"no API key is configured: {refused} refused. Add a key with "
        "`sentinai keys add NAME --role operator` (SENTINAI_API_KEYS_FILE) or set SENTINAI_API_KEY"
    )


def identify(keys: KeyStore, token: str | None, *, refused: str = "writes are") -> Principal | KeyProblem:
    """The principal whose key ``token`` is, or why not (no key configured, missing, wrong, revoked)."""
    try:
        if not keys.configured:
            return KeyProblem(401, no_keys(refused))
        principal = keys.authenticate(token)
        if principal is not None:
            return principal
        if not token:
            return KeyProblem(401, "missing x-api-key header")
        revoked = _revoked(keys, token)
        if revoked is not None:
            return KeyProblem(401, f"this x-api-key is {revoked}'s and was revoked; ask for a new key")
    except KeyFileError as exc:
        return KeyProblem(503, f"the API key file cannot be read, so no key can be checked: {exc}")
    return KeyProblem(401, "wrong x-api-key: no active key matches it")


def _revoked(keys: KeyStore, token: str) -> str | None:
    digest = token_hash(token)
    for entry in keys.load().keys:
        if not entry.active and hmac.compare_digest(digest, entry.sha256):
            return entry.name
    return None


def forbidden(principal: Principal, operation: Operation) -> str:
    """Why ``principal``'s role may not do ``operation``, in one sentence."""
    role: Role = principal.role
    may = [_DOING[op] for op in ("approve", "reject", "request") if op in ALLOWED[role]]
    allowed = " and ".join(may) if may else "read, not write"
    article = "an" if role[0] in "aeiou" else "a"
    if not may:
        return f"{principal.name} is {article} {role}: {role}s may {allowed}"
    return f"{principal.name} is {article} {role}: {role}s may {allowed}, not {_DOING[operation]}"


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
            self._tokens.clear()  # bounded memory under churn; worst case a fresh burst
        return 0.0


Guard = Callable[[Request], Awaitable[Principal]]


class WriteGuard:
    """Write routes' dependencies: read-only first (it says why), then the key, the role, the rate limit.

    ``guard.require("approve")`` is a FastAPI dependency that returns the caller's ``Principal``.
    """

    def __init__(self, settings: ApiSettings, *, keys: KeyStore, clock: Clock = time.monotonic) -> None:
        self.read_only = settings.read_only_mode
        self.keys = keys
        self.bucket = TokenBucket(settings.write_rate_per_min / 60, settings.write_burst, clock)

    def enabled(self) -> bool:
        """Whether any write could pass: not read-only, and some key configured and readable."""
        try:
            return not self.read_only and self.keys.configured
        except KeyFileError:
            return False

    def require(self, operation: Operation) -> Guard:
        async def principal(request: Request) -> Principal:
            return self.check(request.headers.get("x-api-key"), operation)

        return principal

    def check(self, token: str | None, operation: Operation) -> Principal:
        if self.read_only:
            raise HTTPException(403, detail=READ_ONLY)
        found = identify(self.keys, token)
        if isinstance(found, KeyProblem):
            raise HTTPException(found.status, detail=found.detail)
        if not found.may(operation):
            raise HTTPException(403, detail=forbidden(found, operation))
        wait = self.bucket.take(identity_key(found.name))
        if wait > 0:
            raise HTTPException(
                429,
                detail=f"too many writes by {found.name}; retry in {wait:.1f}s",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        return found
