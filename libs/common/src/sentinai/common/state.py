"""Shared coordination state: one small ``StateStore`` protocol, two implementations.

NATS KV is the default (nothing extra to run); Redis is used when ``SENTINAI_REDIS_URL`` is set.
Both give the same semantics: values are bytes, keys are dot-separated tokens, a key may carry a
TTL, and ``create`` succeeds only when the key is absent or expired (a lock / once-only record).
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol, runtime_checkable

import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

from sentinai.common.streams import not_permitted

_KEY = re.compile(r"^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$")
Clock = Callable[[], float]


class StateStoreError(RuntimeError):
    """The backing store could not be reached or answered with an error."""


def _bucket_config(bucket: str, *, replicas: int | None) -> KeyValueConfig:
    # Direct gets name the key in their subject, so NATS permissions can scope reads per key prefix.
    return KeyValueConfig(
        bucket=bucket, history=1, description="SentinAI state", replicas=replicas or 1, direct=True
    )


async def ensure_bucket(
    js: JetStreamContext, bucket: str, *, replicas: int | None = None, change: bool = True
) -> KeyValue:
    """The KV bucket: created when missing; with ``change``, an existing one without direct gets is
    given them (the admin step does this; a service only creates, and only on an open server)."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        try:
            return await js.create_key_value(_bucket_config(bucket, replicas=replicas))
        except BadRequestError as exc:
            if exc.err_code != 10058:  # another process created it first
                raise
        except TimeoutError as exc:
            raise not_permitted(f"the KV bucket {bucket!r} is missing", timeout_s=js._timeout) from exc
        return await js.key_value(bucket)
    if change:
        stream = f"KV_{bucket}"
        info = await js.stream_info(stream)
        if not info.config.allow_direct:
            await js.update_stream(replace(info.config, allow_direct=True))
            kv = await js.key_value(bucket)
    return kv


def check_key(key: str) -> str:
    if not _KEY.match(key) or len(key) > 256:
        raise ValueError(f"invalid state key {key!r}: dot-separated tokens of letters, digits, '-', '_', '='")
    return key


@runtime_checkable
class StateStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None: ...

    async def create(self, key: str, value: bytes, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent or expired; return whether it was stored."""
        ...

    async def delete(self, key: str) -> None: ...

    async def keys(self, prefix: str = "") -> list[str]:
        """Live keys starting with ``prefix``, sorted."""
        ...

    async def close(self) -> None: ...


# NATS KV keeps no per-key expiry we can rely on across server versions, so each value carries its
# own deadline: an 8-byte big-endian epoch-milliseconds header (0 = never expires).
_HEADER = struct.Struct(">Q")


def _wrap(value: bytes, ttl_s: float | None, now: float) -> bytes:
    deadline = 0 if ttl_s is None else int((now + ttl_s) * 1000)
    return _HEADER.pack(deadline) + value


def _unwrap(raw: bytes, now: float) -> bytes | None:
    if len(raw) < _HEADER.size:
        return None
    (deadline,) = _HEADER.unpack_from(raw)
    if deadline and deadline <= now * 1000:
        return None
    return raw[_HEADER.size :]


class NatsKvStateStore:
    """StateStore on a JetStream key-value bucket."""

    def __init__(self, kv: KeyValue, *, clock: Clock = time.time) -> None:
        self._kv = kv
        self._clock = clock

    @classmethod
    async def open(
        cls, nc: NatsClient, bucket: str, *, replicas: int | None = None, clock: Clock = time.time
    ) -> NatsKvStateStore:
        """The bucket, created with ``replicas`` copies (default 1) only when missing.

        A service whose NATS user may not create it (per-service users) gets ``ProvisioningError``
        naming the admin step that makes it.
        """
        return cls(await ensure_bucket(nc.jetstream(), bucket, replicas=replicas, change=False), clock=clock)

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(check_key(key))
        except KeyNotFoundError:
            return None
        return None if entry.value is None else _unwrap(entry.value, self._clock())

    async def put(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        await self._kv.put(check_key(key), _wrap(value, ttl_s, self._clock()))

    async def create(self, key: str, value: bytes, *, ttl_s: float | None = None) -> bool:
        check_key(key)
        now = self._clock()
        payload = _wrap(value, ttl_s, now)
        try:
            await self._kv.create(key, payload)
            return True
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return False  # deleted between our two calls by someone else; let them win
        if entry.value is not None and _unwrap(entry.value, now) is not None:
            return False
        try:
            # Compare-and-set on the expired revision: of two racing creators exactly one succeeds.
            await self._kv.update(key, payload, last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def delete(self, key: str) -> None:
        await self._kv.delete(check_key(key))

    async def keys(self, prefix: str = "") -> list[str]:
        try:
            names = await self._kv.keys()
        except NoKeysError:
            return []
        live = []
        for name in names:
            if name.startswith(prefix) and await self.get(name) is not None:
                live.append(name)
        return sorted(live)

    async def close(self) -> None:
        """The NATS connection belongs to the caller; nothing to release here."""


class RedisStateStore:
    """StateStore on Redis (the seed's multi-instance option)."""

    def __init__(self, client: aioredis.Redis, *, namespace: str = "sentinai") -> None:
        self._redis = client
        self._ns = namespace + ":"

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "sentinai", timeout_s: float = 5.0) -> RedisStateStore:
        client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, namespace=namespace)

    def _k(self, key: str) -> str:
        return self._ns + check_key(key)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis.get(self._k(key))
        except aioredis.RedisError as exc:
            raise StateStoreError(f"redis get {key!r} failed: {exc}") from exc
        # The client is built without decode_responses, so values come back as bytes.
        return value.encode() if isinstance(value, str) else value

    async def put(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        try:
            await self._redis.set(self._k(key), value, px=px)
        except aioredis.RedisError as exc:
            raise StateStoreError(f"redis set {key!r} failed: {exc}") from exc

    async def create(self, key: str, value: bytes, *, ttl_s: float | None = None) -> bool:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        try:
            return bool(await self._redis.set(self._k(key), value, px=px, nx=True))
        except aioredis.RedisError as exc:
            raise StateStoreError(f"redis set-nx {key!r} failed: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(self._k(key))
        except aioredis.RedisError as exc:
            raise StateStoreError(f"redis delete {key!r} failed: {exc}") from exc

    async def keys(self, prefix: str = "") -> list[str]:
        pattern = self._ns + prefix.replace("*", r"\*") + "*"
        try:
            found = [k.decode()[len(self._ns) :] async for k in self._redis.scan_iter(match=pattern)]
        except aioredis.RedisError as exc:
            raise StateStoreError(f"redis scan {prefix!r} failed: {exc}") from exc
        return sorted(found)

    async def close(self) -> None:
        await self._redis.aclose()


async def open_state_store(
    *, nc: NatsClient, redis_url: str | None, bucket: str, replicas: int | None = None
) -> StateStore:
    """Redis when a URL is configured, else the NATS KV bucket on the given connection."""
    if redis_url:
        return RedisStateStore.from_url(redis_url)
    return await NatsKvStateStore.open(nc, bucket, replicas=replicas)
