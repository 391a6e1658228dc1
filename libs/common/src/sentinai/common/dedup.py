"""Bounded memory of handled event ids: JetStream redelivers, and a handler must not act twice."""

from __future__ import annotations

from collections import OrderedDict


class SeenIds:
    """The most recent ``capacity`` ids, oldest forgotten first."""

    __slots__ = ("_ids", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; ``False`` if it was already seen."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
