"""The api's view of diagnoses and forecasts: RCAs by id and episode, predictions per chain."""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime
from typing import Any, NamedTuple

from sentinai.common.decisions import PredictionMade, RcaCompleted


def rca_view(rca: RcaCompleted) -> dict[str, Any]:
    body = rca.model_dump(mode="json", by_alias=True)
    body["chain"] = rca.chain_id
    return body


def prediction_view(prediction: PredictionMade) -> dict[str, Any]:
    return prediction.model_dump(mode="json", by_alias=True)


class _Kept(NamedTuple):
    occurred_at: datetime
    event_id: str
    body: bytes

    def decode(self) -> PredictionMade:
        return PredictionMade.model_validate_json(self.body)


class Insights:
    def __init__(self, *, keep_rcas: int, keep_predictions: int) -> None:
        self._keep_rcas = keep_rcas
        self._rcas: OrderedDict[str, RcaCompleted] = OrderedDict()
        # The newest RCA of an episode answers for it (an incident is re-diagnosed as evidence grows).
        self._by_episode: dict[str, str] = {}
        self._keep_predictions = keep_predictions
        # Each chain's forecasts as their JSON (≈ 0.8 KB against ≈ 1.9 KB as objects: 360 per chain
        # add up), decoded when read; the newest also as an object, since every chain summary shows it.
        self._predictions: dict[str, deque[_Kept]] = {}
        self._latest: dict[str, PredictionMade] = {}

    def apply_rca(self, rca: RcaCompleted) -> bool:
        if rca.event_id in self._rcas:
            return False
        self._rcas[rca.event_id] = rca
        newest = self._rcas.get(self._by_episode.get(rca.episode_id, ""))
        if newest is None or newest.occurred_at <= rca.occurred_at:
            self._by_episode[rca.episode_id] = rca.event_id
        if len(self._rcas) > self._keep_rcas:
            _, dropped = self._rcas.popitem(last=False)
            if self._by_episode.get(dropped.episode_id) == dropped.event_id:
                del self._by_episode[dropped.episode_id]
        return True

    def apply_prediction(self, prediction: PredictionMade) -> bool:
        history = self._predictions.setdefault(prediction.chain_id, deque(maxlen=self._keep_predictions))
        if any(kept.event_id == prediction.event_id for kept in history):
            return False
        history.append(_Kept(prediction.occurred_at, prediction.event_id, prediction.to_json()))
        if len(history) > 1 and history[-2].occurred_at > prediction.occurred_at:
            ordered = sorted(history, key=lambda kept: kept.occurred_at)
            history.clear()
            history.extend(ordered)
        newest = history[-1]
        self._latest[prediction.chain_id] = (
            prediction if newest.event_id == prediction.event_id else newest.decode()
        )
        return True

    def rca(self, rca_id: str) -> RcaCompleted | None:
        """By event id, else by episode id (the episode's newest diagnosis)."""
        found = self._rcas.get(rca_id)
        if found is None and rca_id in self._by_episode:
            found = self._rcas.get(self._by_episode[rca_id])
        return found

    def rcas(self, *, chain: str | None, limit: int) -> list[RcaCompleted]:
        matching = [r for r in self._rcas.values() if chain is None or r.chain_id == chain]
        matching.sort(key=lambda r: r.occurred_at, reverse=True)
        return matching[:limit]

    def of_episode(self, episode_id: str) -> RcaCompleted | None:
        event_id = self._by_episode.get(episode_id)
        return None if event_id is None else self._rcas.get(event_id)

    def incidents(self, *, chain: str | None) -> list[RcaCompleted]:
        """The newest RCA of every incident."""
        found = (self._rcas[event_id] for event_id in self._by_episode.values())
        return [r for r in found if chain is None or r.chain_id == chain]

    def predictions(self, chain_id: str, *, limit: int) -> list[PredictionMade]:
        history = self._predictions.get(chain_id)
        return [] if history is None else [kept.decode() for kept in list(history)[-limit:]]

    def latest_prediction(self, chain_id: str) -> PredictionMade | None:
        return self._latest.get(chain_id)

    def chains(self) -> set[str]:
        return {r.chain_id for r in self._rcas.values()} | set(self._predictions)
