"""The effect-record protocol: each approved action changes the cluster at most once, whoever delivers it.

``effects.<actionId>`` is created before anything is done, so a second delivery (or a second
replica) finds it. Its ``state``:

- ``executing``: a holder is at work and refreshes ``beat_at``; just before it patches, it records
  the captured spec (``previous``) and the ``patch``. A record whose holder has been silent longer
  than ``stale_after_s`` is an orphan (the holder was killed): one executor adopts it and, from
  the live workload, tells whether the patch went in (verify it) or not (apply it).
- ``done``: the outcome is decided; ``events`` holds the events to publish. A redelivery that
  finds ``done`` publishes them again under the same event ids (JetStream drops repeats).
- ``published``: the events are on the bus; nothing is left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel

from sentinai.common.decisions import ActionExecuted, AuditRecorded
from sentinai.common.state import StateStore
from sentinai.executor import logic
from sentinai.executor.ports import Clock

log = logging.getLogger(__name__)


class EffectRecord(BaseModel):
    """``effects.<actionId>``: created before acting, so a second delivery or replica does nothing."""

    state: Literal["executing", "done", "published"]
    executor: str
    started_at: AwareDatetime
    beat_at: AwareDatetime | None = None
    events: list[str] = []
    previous: dict[str, Any] | None = None
    patch: dict[str, Any] | None = None

    def dump(self) -> bytes:
        return self.model_dump_json().encode()

    def silent_s(self, now: datetime) -> float:
        """Seconds since the holder last showed it was alive."""
        return (now - (self.beat_at or self.started_at)).total_seconds()

    def decoded_events(self) -> list[ActionExecuted | AuditRecorded]:
        """The events a ``done`` record holds, in the order they are published."""
        return [_decode_event(text) for text in self.events]


class Busy(RuntimeError):
    """Another executor is carrying out this action and is alive: ask again later."""


class Keeper:
    """Holds one action's effect record while it runs: saved on change, refreshed on a beat.

    ``applied`` says whether this attempt may already have changed the cluster; from then on the
    record is never dropped, and only a recovery that looks at the live workload touches the action.
    """

    def __init__(
        self,
        store: StateStore,
        key: str,
        record: EffectRecord,
        *,
        ttl_s: float,
        clock: Clock,
        applied: bool = False,
    ) -> None:
        self.store = store
        self.key = key
        self.record = record
        self.ttl_s = ttl_s
        self.clock = clock
        self.applied = applied

    async def save(self, **update: Any) -> None:
        self.record = self.record.model_copy(update=update)
        await self.store.put(self.key, self.record.dump(), ttl_s=self.ttl_s)

    async def patching(self, *, previous: dict[str, Any], patch: logic.Body) -> None:
        """Recorded before the patch leaves: if we die now, whoever recovers can compare."""
        await self.save(previous=previous, patch=patch)
        self.applied = True

    async def done(self, events: Sequence[ActionExecuted | AuditRecorded]) -> None:
        await self.save(state="done", events=[event.to_json().decode() for event in events])

    async def published(self) -> None:
        await self.save(state="published")

    @contextlib.asynccontextmanager
    async def holding(self, *, every_s: float) -> AsyncIterator[None]:
        """Beat while the block runs; if it fails before anything was applied, drop the record.

        Dropped, the record lets the redelivery try again. Once a patch may have gone in, the record
        stays (with the patch) for a recovery to compare with the live workload.
        """
        try:
            async with self._beating(every_s):
                yield
        except BaseException:
            if not self.applied:
                await self.store.delete(self.key)
            raise

    @contextlib.asynccontextmanager
    async def _beating(self, every_s: float) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                await self.clock.sleep(every_s)
                try:
                    await self.save(beat_at=self.clock.now())
                except Exception as exc:  # a missed beat only makes the record look older
                    log.warning("effect record heartbeat failed", extra={"error": f"{exc}"})

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Effects:
    """The effect records of one executor instance in the state store."""

    def __init__(
        self, store: StateStore, *, instance: str, ttl_s: float, stale_after_s: float, clock: Clock
    ) -> None:
        self.store = store
        self.instance = instance
        self.ttl_s = ttl_s
        self.stale_after_s = stale_after_s
        self.clock = clock

    async def claim(self, action_id: str) -> Keeper | None:
        """A new ``executing`` record for ``action_id``, ours; ``None`` if the action already has one."""
        key = logic.effect_key(action_id)
        started = self.clock.now()
        record = EffectRecord(state="executing", executor=self.instance, started_at=started, beat_at=started)
        if not await self.store.create(key, record.dump(), ttl_s=self.ttl_s):
            return None
        return self._keeper(key, record)

    async def existing(self, action_id: str) -> EffectRecord | tuple[Keeper, EffectRecord]:
        """The record found by a second delivery: ``done``/``published`` as it is, an orphan adopted.

        An adopted orphan comes back as (our keeper of it, the record as its holder left it).
        Raises ``Busy`` while a live executor holds the action, or another is adopting it.
        """
        key = logic.effect_key(action_id)
        raw = await self.store.get(key)
        record = EffectRecord.model_validate_json(raw) if raw else None
        if record is None:
            raise Busy(f"the effect record of {action_id} was released while we looked")
        if record.state != "executing":
            return record
        silent = record.silent_s(self.clock.now())
        if silent <= self.stale_after_s:
            raise Busy(f"{record.executor} is executing {action_id} ({silent:.0f}s since its beat)")
        return await self._adopt(key, action_id, record, silent_s=silent), record

    async def mark_published(self, action_id: str, record: EffectRecord) -> None:
        """A ``done`` record whose events a redelivery has published again."""
        key = logic.effect_key(action_id)
        await self.store.put(key, record.model_copy(update={"state": "published"}).dump(), ttl_s=self.ttl_s)

    async def _adopt(self, key: str, action_id: str, orphan: EffectRecord, *, silent_s: float) -> Keeper:
        """Take over an action whose executor died mid-way (its record stopped beating)."""
        # Of two executors finding the same orphan, one takes it; the other asks again later.
        claim = f"recovery.{key}"
        if not await self.store.create(claim, self.instance.encode(), ttl_s=self.stale_after_s):
            raise Busy(f"another executor is recovering {action_id}")
        log.warning(
            "recovering an orphaned action",
            extra={"actionId": action_id, "executor": orphan.executor, "silentS": round(silent_s)},
        )
        mine = orphan.model_copy(update={"executor": self.instance, "beat_at": self.clock.now()})
        keeper = self._keeper(key, mine, applied=orphan.patch is not None)
        await keeper.save()
        return keeper

    def _keeper(self, key: str, record: EffectRecord, *, applied: bool = False) -> Keeper:
        return Keeper(self.store, key, record, ttl_s=self.ttl_s, clock=self.clock, applied=applied)


def _decode_event(text: str) -> ActionExecuted | AuditRecorded:
    data = json.loads(text)
    if "outcome" in data and "dryRun" in data:
        return ActionExecuted.model_validate(data)
    return AuditRecorded.model_validate(data)
