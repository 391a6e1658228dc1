"""Both StateStore implementations behave the same against real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import nats
import pytest

from sentinai.common.state import NatsKvStateStore, RedisStateStore, StateStore, StateStoreError
from sentinai.devkit.natsserver import EmbeddedNats

pytestmark = pytest.mark.integration


class FakeClock:
    """Controls TTL expiry without sleeping; the stores read time only through it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["nats-kv", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "nats-kv":
        server: EmbeddedNats = request.getfixturevalue("nats_server")
        nc = await nats.connect(server.url)
        kv_store = await NatsKvStateStore.open(nc, "test-state")
        yield kv_store
        await kv_store.close()
        await nc.close()
    else:
        url: str = request.getfixturevalue("redis_url")
        redis_store = RedisStateStore.from_url(url, namespace="test")
        yield redis_store
        await redis_store.close()


async def test_put_get_delete_round_trip(store: StateStore) -> None:
    assert await store.get("approvals.a1") is None
    await store.put("approvals.a1", b'{"by":"alice"}')
    assert await store.get("approvals.a1") == b'{"by":"alice"}'
    await store.put("approvals.a1", b'{"by":"bob"}')
    assert await store.get("approvals.a1") == b'{"by":"bob"}'
    await store.delete("approvals.a1")
    assert await store.get("approvals.a1") is None


async def test_create_is_a_lock_only_one_of_many_racers_wins(store: StateStore) -> None:
    results = await asyncio.gather(*(store.create("cooldown.twin.op-geth", b"x", ttl_s=60) for _ in range(8)))
    assert results.count(True) == 1
    assert await store.create("cooldown.twin.op-geth", b"y", ttl_s=60) is False


async def test_keys_lists_live_keys_by_prefix(store: StateStore) -> None:
    await store.put("effects.a", b"1")
    await store.put("effects.b", b"2")
    await store.put("other.c", b"3")
    assert await store.keys("effects.") == ["effects.a", "effects.b"]
    assert "other.c" in await store.keys()


async def test_invalid_key_is_refused_with_a_clear_error(store: StateStore) -> None:
    with pytest.raises(ValueError, match="invalid state key"):
        await store.put("has space", b"1")


async def test_nats_kv_ttl_expires_and_lock_can_be_retaken(nats_server: EmbeddedNats) -> None:
    clock = FakeClock()
    nc = await nats.connect(nats_server.url)
    try:
        kv_store = await NatsKvStateStore.open(nc, "ttl-state", clock=clock)
        assert await kv_store.create("cooldown.c1.op-geth", b"first", ttl_s=300)
        clock.now += 299
        assert await kv_store.create("cooldown.c1.op-geth", b"second", ttl_s=300) is False
        assert await kv_store.get("cooldown.c1.op-geth") == b"first"
        clock.now += 2
        assert await kv_store.get("cooldown.c1.op-geth") is None
        assert await kv_store.keys("cooldown.") == []
        racers = await asyncio.gather(
            *(kv_store.create("cooldown.c1.op-geth", b"n", ttl_s=300) for _ in range(5))
        )
        assert racers.count(True) == 1
    finally:
        await nc.close()


async def test_redis_ttl_expires(redis_url: str) -> None:
    redis_store = RedisStateStore.from_url(redis_url)
    try:
        assert await redis_store.create("cooldown.c1.op-node", b"v", ttl_s=0.2)
        assert await redis_store.create("cooldown.c1.op-node", b"v", ttl_s=0.2) is False
        await _eventually(lambda: redis_store.get("cooldown.c1.op-node"), expect=None, timeout_s=3)
        assert await redis_store.create("cooldown.c1.op-node", b"v", ttl_s=10)
    finally:
        await redis_store.close()


async def test_redis_unreachable_is_a_clear_error() -> None:
    from sentinai.common.net import free_port

    redis_store = RedisStateStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    try:
        with pytest.raises(StateStoreError, match=r"redis get 'approvals\.x' failed"):
            await redis_store.get("approvals.x")
    finally:
        await redis_store.close()


async def _eventually(read: Callable[[], object], *, expect: object, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await read()  # type: ignore[misc]
        if value == expect:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value!r} after {timeout_s}s, wanted {expect!r}")
        await asyncio.sleep(0.05)
