"""When to run RCA: one incident per chain at a time, opened by its first anomaly; no I/O, no clock.

Every anomaly of a chain while an incident is open joins it and triggers a re-diagnosis, and so does
fresh telemetry while the answer still waits for corroboration (``due``). A re-diagnosis is published
only if it changes the answer: another class, more confidence, or its class's evidence rule newly met;
revisions are rate-limited (``revise_every_s``), never locked. The incident is resolved when all its
anomalies have resolved, and closes once a quiet period has passed in event time, so a replay of the
same events opens the same incidents with the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sentinai.common.decisions import Corroboration
from sentinai.common.dedup import SeenIds
from sentinai.common.events import AnomalyDetected, AnomalyResolved, derived_id
from sentinai.common.incidents import RootCauseClass

# A new class at least this confident replaces any published answer.
SURE_ENOUGH: Final = 0.4
# An answer this confident whose evidence rule for automatic execution is met needs no re-diagnosis
# from telemetry: only a new anomaly can change it (the planner's bar for a cluster action).
SETTLED_CONFIDENCE: Final = 0.5


def incident_id(chain_id: str, opening_episode_id: str) -> str:
    """Derived from the anomaly that opened it, so a replay opens the same incident."""
    return derived_id("incident", chain_id, opening_episode_id)


@dataclass(slots=True)
class Incident:
    incident_id: str
    chain_id: str
    opened_at: datetime
    open_episodes: set[str] = field(default_factory=set)
    quiet_since: datetime | None = None  # when the last of its anomalies resolved
    published_class: RootCauseClass | None = None
    published_confidence: float = 0.0
    published_proposal_met: bool = False
    published_auto_met: bool = False
    published_at: datetime | None = None
    diagnosed_at: datetime | None = None
    # The episodes the published answers explain, and since when none of them is open: the diagnosed
    # condition is over then, whatever unrelated noise keeps joining the incident.
    supporting: set[str] = field(default_factory=set)
    supported_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Trigger:
    """Run an RCA for this incident; ``opening`` ones are always published."""

    incident_id: str
    opening: bool


class IncidentTracker:
    def __init__(
        self,
        *,
        quiet_s: float = 60.0,
        revise_delta: float = 0.1,
        revise_every_s: float = 10.0,
        seen_capacity: int = 65_536,
    ) -> None:
        self.quiet_s = quiet_s
        self.revise_delta = revise_delta
        self.revise_every_s = revise_every_s
        self._seen = SeenIds(seen_capacity)
        self.incidents: dict[str, Incident] = {}  # chain id → its open incident

    def detected(self, anomaly: AnomalyDetected) -> Trigger | None:
        """The RCA this anomaly calls for, or ``None`` for an anomaly already handled (a redelivery)."""
        if anomaly.event_id in self._seen:
            return None
        now = anomaly.occurred_at
        chain = anomaly.chain_id
        current = self.incidents.get(chain)
        if current is not None and self._closable(current, now=now):
            # Callers that report closed incidents ask ``close_quiet`` first; this only keeps it safe.
            del self.incidents[chain]
            current = None
        if current is None:
            current = Incident(incident_id(chain, anomaly.episode_id), chain, now)
            self.incidents[chain] = current
            opening = True
        else:
            # Published nothing yet (a failed first publish being redelivered): still the opening RCA.
            opening = current.published_class is None
        current.open_episodes.add(anomaly.episode_id)
        current.quiet_since = None
        if anomaly.episode_id in current.supporting:
            current.supported_until = None
        return Trigger(current.incident_id, opening)

    def resolved(self, resolved: AnomalyResolved) -> None:
        current = self.incidents.get(resolved.chain_id)
        if current is None or resolved.episode_id not in current.open_episodes:
            return
        current.open_episodes.discard(resolved.episode_id)
        if not current.open_episodes:
            current.quiet_since = resolved.occurred_at
        if current.supporting and not (current.supporting & current.open_episodes):
            current.supported_until = current.supported_until or resolved.occurred_at

    def close_quiet(self, chain_id: str, *, now: datetime) -> Incident | None:
        """The chain's incident, removed, once it is over: every anomaly its answers explain (or, when
        they explain none, every anomaly of it) resolved ``quiet_s`` ago."""
        current = self.incidents.get(chain_id)
        if current is None:
            return None
        cleared = current.supported_until
        explained_over = (
            cleared is not None
            and not (current.supporting & current.open_episodes)
            and (now - cleared).total_seconds() >= self.quiet_s
        )
        if not (explained_over or self._closable(current, now=now)):
            return None
        del self.incidents[chain_id]
        return current

    def due(self, chain_id: str, *, now: datetime, every_s: float) -> Trigger | None:
        """A re-diagnosis from telemetry, when the chain's open incident is unsettled and it is time."""
        current = self.incidents.get(chain_id)
        if current is None or not current.open_episodes:
            return None
        settled = (
            current.published_class is not None
            and current.published_auto_met
            and current.published_confidence >= SETTLED_CONFIDENCE
        )
        if settled:
            return None
        last = current.diagnosed_at
        if last is not None and (now - last).total_seconds() < every_s:
            return None
        return Trigger(current.incident_id, opening=current.published_class is None)

    def diagnosed(self, trigger: Trigger, *, now: datetime) -> None:
        current = self._find(trigger)
        if current is not None:
            current.diagnosed_at = now if current.diagnosed_at is None else max(now, current.diagnosed_at)

    def should_publish(
        self,
        trigger: Trigger,
        *,
        root_cause_class: RootCauseClass,
        confidence: float,
        corroboration: Corroboration | None = None,
        now: datetime | None = None,
    ) -> bool:
        current = self._find(trigger)
        if current is not None and current.published_class is None and root_cause_class == "unknown":
            # An opening that no signature explains says nothing the anomaly did not: hold it back so the
            # incident's first published answer is a conclusive one (its anomalies stay visible anyway).
            return False
        if trigger.opening or current is None or current.published_class is None:
            return True
        if (
            now is not None
            and current.published_at is not None
            and (now - current.published_at).total_seconds() < self.revise_every_s
        ):
            return False
        if root_cause_class != current.published_class:
            # Another class must be about as sure as the answer it replaces, or it is flapping on noise.
            return confidence >= min(current.published_confidence, SURE_ENOUGH)
        newly_met = corroboration is not None and (
            (corroboration.proposal_met and not current.published_proposal_met)
            or (corroboration.auto_met and not current.published_auto_met)
        )
        return newly_met or confidence >= current.published_confidence + self.revise_delta

    def published(
        self,
        trigger: Trigger,
        *,
        root_cause_class: RootCauseClass,
        confidence: float,
        corroboration: Corroboration | None = None,
        now: datetime | None = None,
        supporting: tuple[str, ...] = (),
    ) -> None:
        current = self._find(trigger)
        if current is not None:
            current.supporting.update(supporting)
            still_open = current.supporting & current.open_episodes
            current.supported_until = (
                None if still_open or not current.supporting else (now or current.opened_at)
            )
            current.published_class = root_cause_class
            current.published_confidence = confidence
            current.published_proposal_met = corroboration is not None and corroboration.proposal_met
            current.published_auto_met = corroboration is not None and corroboration.auto_met
            current.published_at = now

    def _find(self, trigger: Trigger) -> Incident | None:
        return next((i for i in self.incidents.values() if i.incident_id == trigger.incident_id), None)

    def handled(self, anomaly_event_id: str) -> None:
        """Mark an anomaly done (its RCA published or judged unchanged): redeliveries are ignored."""
        self._seen.add(anomaly_event_id)

    def _closable(self, incident: Incident, *, now: datetime) -> bool:
        return (
            incident.quiet_since is not None
            and not incident.open_episodes
            and (now - incident.quiet_since).total_seconds() >= self.quiet_s
        )
