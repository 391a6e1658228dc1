"""The deterministic diagnosis: every signature scored, ranked, and the winner explained; no I/O, no clock."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

from sentinai.common.decisions import AuditRecorded, Hypothesis, RcaCompleted, RcaEngine
from sentinai.common.events import AnomalyDetected, Severity
from sentinai.rca.evidence import Facts
from sentinai.rca.model import Diagnosis, RcaContext
from sentinai.rca.signatures import SIGNATURES, SPECS, UNKNOWN_SPEC, spec_of

__all__ = [
    "UNKNOWN_BELOW",
    "Diagnosis",
    "RcaContext",
    "audit_of",
    "confidence",
    "diagnose",
    "hypotheses",
    "to_event",
]

# Below this top score the evidence is too thin to name a cause: the answer is "unknown".
UNKNOWN_BELOW: Final = 0.35
MAX_HYPOTHESES: Final = 5
MAX_EVIDENCE: Final = 8
# The anomaly that asked for this RCA is the freshest fact: a class that explains it gets this much more,
# so a new fault wins over the last incident's evidence still inside the windows.
TRIGGER_BONUS: Final = 0.15


def confidence(top: float, second: float) -> float:
    """Calibrated-ish: the top score, discounted when a runner-up is close behind it."""
    if top <= 0:
        return 0.0
    gap = max(0.0, top - second) / top
    return round(min(0.99, top * (0.55 + 0.45 * gap)), 2)


def _risk(cls: str, evidence: tuple[str, ...]) -> Severity:
    # An empty batcher key needs a human with funds: the catalogue's "critical" end of its range.
    if cls == "batcher_failure" and any("insufficient funds" in line for line in evidence):
        return "critical"
    return spec_of(cls).risk


def hypotheses(ctx: RcaContext) -> tuple[Hypothesis, ...]:
    """Every class with any evidence, best first (ties in catalogue order, so the result is stable)."""
    facts = Facts(ctx)
    trigger = ctx.anomaly
    scored = []
    for cls, signature in SIGNATURES.items():
        case = signature(facts)
        if case.score > 0 and _explains(case.evidence, trigger):
            case.score += TRIGGER_BONUS
        if case.capped > 0:
            spec = SPECS[cls]
            scored.append(
                Hypothesis(
                    cause=cls,
                    score=case.capped,
                    summary=spec.title,
                    affected_components=spec.affected,
                    evidence=tuple(case.evidence[:MAX_EVIDENCE]),
                )
            )
    scored.sort(key=lambda h: -h.score)
    return tuple(scored[:MAX_HYPOTHESES])


def _explains(evidence: list[str], trigger: AnomalyDetected) -> bool:
    """The class's evidence quotes the trigger's lines (a log anomaly) or names its metric."""
    if trigger.rule == "log":
        return any(line.strip() in quoted for line in trigger.evidence for quoted in evidence)
    needle = f"{trigger.component} {trigger.metric}"
    return any(needle in quoted for quoted in evidence)


def diagnose(ctx: RcaContext) -> Diagnosis:
    ranked = hypotheses(ctx)
    top = ranked[0] if ranked else None
    second = ranked[1].score if len(ranked) > 1 else 0.0
    if top is None or top.score < UNKNOWN_BELOW:
        strongest = f" (strongest: {top.cause} at {top.score:.2f})" if top is not None else ""
        observed = tuple(f"{a.component}: {a.description}" for a in Facts(ctx).anomalies())
        return Diagnosis(
            root_cause=UNKNOWN_SPEC.title + strongest,
            root_cause_class="unknown",
            affected_components=(ctx.anomaly.component,),
            risk_level=UNKNOWN_SPEC.risk,
            action_plan=UNKNOWN_SPEC.action_plan,
            hypotheses=ranked,
            evidence=observed[:MAX_EVIDENCE],
            confidence=min(0.3, confidence(top.score, second)) if top is not None else 0.0,
        )
    cls = top.cause
    spec = spec_of(cls)
    return Diagnosis(
        root_cause=f"{spec.title} ({top.evidence[0]})" if top.evidence else spec.title,
        root_cause_class=cls,
        affected_components=spec.affected,
        risk_level=_risk(cls, top.evidence),
        action_plan=spec.action_plan,
        hypotheses=ranked,
        evidence=top.evidence,
        confidence=confidence(top.score, second),
    )


def rca_event_id(episode_id: str, anomaly_event_id: str) -> str:
    """Derived from the incident and its trigger, so a redelivered anomaly republishes the same id."""
    return hashlib.blake2b(f"rca|{episode_id}|{anomaly_event_id}".encode(), digest_size=16).hexdigest()


def to_event(
    diagnosis: Diagnosis,
    ctx: RcaContext,
    *,
    episode_id: str,
    engine: RcaEngine,
    model: str | None,
    latency_ms: float,
    cost_usd: float,
    now: datetime,
) -> RcaCompleted:
    return RcaCompleted(
        event_id=rca_event_id(episode_id, ctx.anomaly.event_id),
        correlation_id=ctx.anomaly.correlation_id,
        occurred_at=now,
        chain_id=ctx.chain_id,
        episode_id=episode_id,
        anomaly_event_id=ctx.anomaly.event_id,
        root_cause=diagnosis.root_cause,
        root_cause_class=diagnosis.root_cause_class,
        affected_components=diagnosis.affected_components,
        risk_level=diagnosis.risk_level,
        action_plan=diagnosis.action_plan,
        hypotheses=diagnosis.hypotheses,
        evidence=diagnosis.evidence,
        confidence=diagnosis.confidence,
        engine=engine,
        model=model,
        latency_ms=max(0.0, latency_ms),
        cost_usd=max(0.0, cost_usd),
    )


def audit_of(event: RcaCompleted, *, llm_refused: str | None = None) -> AuditRecorded:
    """The audit trail's line for a published RCA; ``llm_refused`` says why the LLM's answer was not taken."""
    details: dict[str, object] = {
        "episodeId": event.episode_id,
        "anomalyEventId": event.anomaly_event_id,
        "riskLevel": event.risk_level,
        "actionPlan": event.action_plan,
        "confidence": event.confidence,
        "engine": event.engine,
        "model": event.model,
        "latencyMs": event.latency_ms,
    }
    if llm_refused is not None:
        details["llmRefused"] = llm_refused
    return AuditRecorded(
        event_id=hashlib.blake2b(f"audit|{event.event_id}".encode(), digest_size=16).hexdigest(),
        correlation_id=event.correlation_id,
        occurred_at=event.occurred_at,
        chain_id=event.chain_id,
        kind="rca_completed",
        actor="rca",
        summary=(
            f"{event.root_cause_class} (confidence {event.confidence:.2f}, {event.engine}): "
            f"{event.root_cause}"
        )[:1000],
        reasoning="; ".join(event.evidence),
        outcome=event.root_cause_class,
        details=details,
    )
