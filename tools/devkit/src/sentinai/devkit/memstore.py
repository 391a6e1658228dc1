"""A ``StateStore`` in a dict, for use-case tests on fakes (``services/*/tests/test_service.py``)."""

from __future__ import annotations

from sentinai.common.state import StateStoreError, check_key


class MemoryStore:
    """The StateStore port in memory; TTLs are not kept (no fast test outlives them).

    Set ``down`` to make every call fail as an unreachable Redis or NATS KV would.
    """

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.down = False

    def _reach(self, key: str = "") -> None:
        if self.down:
            raise StateStoreError("the state store is unreachable")
        if key:
            check_key(key)

    async def get(self, key: str) -> bytes | None:
        self._reach(key)
        return self.data.get(key)

    async def put(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        self._reach(key)
        self.data[key] = value

    async def create(self, key: str, value: bytes, *, ttl_s: float | None = None) -> bool:
        self._reach(key)
        if key in self.data:
            return False
        self.data[key] = value
        return True

    async def delete(self, key: str) -> None:
        self._reach(key)
        self.data.pop(key, None)

    async def keys(self, prefix: str = "") -> list[str]:
        self._reach()
        return sorted(key for key in self.data if key.startswith(prefix))

    async def close(self) -> None:
        return None
