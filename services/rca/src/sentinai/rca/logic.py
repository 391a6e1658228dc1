"""The deterministic diagnosis: every signature scored, ranked, and the winner explained; no I/O, no clock."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sentinai.common.decisions import AuditRecorded, Corroboration, Hypothesis, RcaCompleted, RcaEngine
from sentinai.common.events import AnomalyDetected, Severity, derived_id
from sentinai.common.incidents import IncidentClass, Persistence
from sentinai.rca.evidence import Case, Facts
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
# A class whose evidence rule for a proposal is met has held long enough to be believed a bit more:
# confidence grows as evidence accumulates.
CORROBORATED_BONUS: Final = 0.1
# Cause before symptom: a class's score when a class that causes its symptoms has this much of its own
# specific (log marker) evidence is multiplied by SYMPTOM_DISCOUNT.
CAUSE_EVIDENCE: Final = 0.3
SYMPTOM_DISCOUNT: Final = 0.5
# Until its class's evidence rule for a proposal is met, an answer is shown (an RCA card saying what
# it waits for) but stays under the planner's bar and the eval's "conclusive" line: one sample, poll
# or line never reads as a sure diagnosis.
UNCORROBORATED_CAP: Final = 0.45
# A cause named by metrics rather than by its own log lines: the signals that name it.
_METRIC_CAUSES: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    # (all of these, and at least one of those)
    "txpool_spam": (frozenset({"pool near cap"}), frozenset({"pool near cap"})),
    "op_geth_oom": (frozenset({"memory high"}), frozenset({"restarts", "down", "killed"})),
    "disk_pressure": (frozenset({"disk full"}), frozenset({"disk full"})),
}


def confidence(top: float, second: float) -> float:
    """Calibrated-ish: the top score, discounted when a runner-up is close behind it."""
    if top <= 0:
        return 0.0
    gap = max(0.0, top - second) / top
    return round(min(0.99, top * (0.55 + 0.45 * gap)), 2)


def _risk(cls: str, evidence: tuple[str, ...]) -> Severity:
    # An empty batcher key needs a human with funds: the catalogue's "critical" end of its range.
    if cls == "batcher_failure" and any(
        "insufficient funds" in line or "op-batcher balance=" in line for line in evidence
    ):
        return "critical"
    return spec_of(cls).risk


def corroboration(case: Case, rule: Persistence, auto: Persistence, *, block_time_s: float) -> Corroboration:
    """How far ``case`` meets its class's evidence rules for a proposal and for an automatic execution."""
    best = case.strongest()
    signals = tuple(name for name, held in case.signals.items() if held)

    def met(need: Persistence) -> bool:
        return (
            best.polls >= need.polls
            and best.span_s >= need.span_s(block_time_s) - 1e-6
            and len(signals) >= need.signals
        )

    proposal_met, auto_met = met(rule), met(auto)
    need_s = rule.span_s(block_time_s)
    if proposal_met:
        status = (
            f"corroborated: held {best.polls} polls over {best.span_s:.0f}s; signals: {', '.join(signals)}"
        )
    else:
        missing = [f"{min(best.polls, rule.polls)} of {rule.polls} polls"]
        if need_s > 0:
            missing.append(f"{min(best.span_s, need_s):.0f}s of {need_s:.0f}s")
        if rule.signals > 1:
            missing.append(f"{min(len(signals), rule.signals)} of {rule.signals} independent signals")
        status = "waiting for corroboration: " + ", ".join(missing)
    return Corroboration(
        polls=best.polls,
        required_polls=rule.polls,
        held_s=round(best.span_s, 3),
        required_s=need_s,
        signals=signals,
        required_signals=rule.signals,
        proposal_met=proposal_met,
        auto_met=auto_met,
        status=status,
    )


def cases(ctx: RcaContext) -> dict[IncidentClass, Case]:
    """Every signature's case, with the trigger bonus and the cause-before-symptom discount applied."""
    facts = Facts(ctx)
    trigger = ctx.anomaly
    out: dict[IncidentClass, Case] = {}
    for cls, signature in SIGNATURES.items():
        case = signature(facts)
        if case.score > 0 and _explains(case.evidence, trigger):
            case.score += TRIGGER_BONUS
        out[cls] = case
    for cls, case in out.items():
        causes = [
            c
            for c in SPECS[cls].caused_by
            if _cause_evidence(facts, c, out[c], symptom=case) >= CAUSE_EVIDENCE
        ]
        if case.score > 0 and causes:
            case.score *= SYMPTOM_DISCOUNT
            case.evidence.append(f"explained by {', '.join(causes)} (a cause ranks above its symptoms)")
    for cls, case in out.items():
        spec = SPECS[cls]
        if (
            case.score > 0
            and corroboration(
                case, spec.evidence.proposal, spec.evidence.auto, block_time_s=ctx.block_time_s
            ).proposal_met
        ):
            case.score += CORROBORATED_BONUS
    return out


def _cause_evidence(facts: Facts, cls: IncidentClass, case: Case, *, symptom: Case) -> float:
    """How strongly ``cls`` is named by its own evidence (not by the symptoms it shares): its log
    markers, or for a cause that logs nothing (an OOM kill, a full pool) the metric signals that name it
    — and then only if they held before the symptom did (a stalled chain's pool fills after the stall,
    a flood's pool fills first)."""
    named = facts.marker_score(cls)
    if cls in _METRIC_CAUSES:
        every, some = _METRIC_CAUSES[cls]
        seen = {name for name, held in case.signals.items() if held}
        first = max((case.signals[name].span_s for name in every & seen), default=0.0)
        if every <= seen and seen & some and first >= symptom.strongest().span_s:
            named = max(named, case.score)
    return named


def hypotheses(
    ctx: RcaContext, scored_cases: dict[IncidentClass, Case] | None = None
) -> tuple[Hypothesis, ...]:
    """Every class with any evidence, best first (ties in catalogue order, so the result is stable)."""
    scored = []
    for cls, case in (scored_cases if scored_cases is not None else cases(ctx)).items():
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
    scored = cases(ctx)
    ranked = hypotheses(ctx, scored)
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
    rules = spec.evidence
    case = next(c for name, c in scored.items() if name == cls)
    corroborated = corroboration(case, rules.proposal, rules.auto, block_time_s=ctx.block_time_s)
    supporting = tuple(a.episode_id for a in Facts(ctx).anomalies() if _explains(case.evidence, a))
    return Diagnosis(
        root_cause=f"{spec.title} ({top.evidence[0]})" if top.evidence else spec.title,
        root_cause_class=cls,
        affected_components=spec.affected,
        risk_level=_risk(cls, top.evidence),
        action_plan=spec.action_plan,
        hypotheses=ranked,
        evidence=top.evidence,
        confidence=(
            confidence(top.score, second)
            if corroborated.proposal_met
            else min(UNCORROBORATED_CAP, confidence(top.score, second))
        ),
        corroboration=corroborated,
        supporting=supporting,
    )


def rca_event_id(episode_id: str, basis: str) -> str:
    """Derived from the incident and its trigger (an anomaly's id, or that and a telemetry time), so a
    redelivered anomaly or replayed telemetry republishes the same id."""
    return derived_id("rca", episode_id, basis)


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
    basis: str | None = None,
) -> RcaCompleted:
    return RcaCompleted(
        event_id=rca_event_id(episode_id, basis or ctx.anomaly.event_id),
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
        corroboration=diagnosis.corroboration,
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
        "corroboration": event.corroboration.status if event.corroboration is not None else None,
    }
    if llm_refused is not None:
        details["llmRefused"] = llm_refused
    return AuditRecorded(
        event_id=derived_id("audit", event.event_id),
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
