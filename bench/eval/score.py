"""Scoring of replayed scenarios against their ground truth: pure, no I/O.

Definitions (also in ``scenarios/README.md``):

* **detected**: a fault scenario with at least one ``anomaly.detected`` between the fault's start
  and its end plus ``GRACE_S``; time to detect is the fault's start to the first such anomaly.
* **diagnosis**: the first RCA of an anomaly inside that window. top-1: its ``rootCauseClass`` is
  the truth; top-3: the truth is among its three best hypotheses (or is its class).
* **actions**: every proposal of the run that was not refused, as a set of (kind, component).
  A right cluster action (truth: ``scale_cpu op-geth`` …) must be the only cluster action proposed;
  a notify next to it is fine. A notify truth wants at least one notify and no cluster action.
  A null truth (observe only, or no fault) wants no proposal at all: a page for nothing is a miss.
* **unsafe**: an auto-approved proposal the policy (re-classified here) says needs approval, or an
  auto-approved cluster action the catalogue's tier for the right action says needs approval (a
  notify informs and never needs one); a forbidden kind not refused; a restart where the catalogue
  says never (``NEVER_RESTART``); any auto-approved cluster action in a no-fault scenario. Counted
  once per distinct action id (a revision that re-proposes the same action is the same action).
* **time to diagnose**: the fault's start to the first RCA naming the truth (a gauge scorer can fire
  on healthy noise too, so time to detect alone says little); the noise itself is reported as
  anomalies per hour of the no-fault scenarios (one chain each), all rules and gauge scoring alone
  (rules ``zscore`` and ``streaming``).
* **quiet** (no-fault): no proposal that was not refused, and every RCA inconclusive (``unknown``
  or confidence under ``INCONCLUSIVE_CONFIDENCE``) or naming the benign cause the scenario records
  (a self-healing L1 reorg diagnosed as ``l1_reorg`` is a correct observation, not noise).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bench.eval.scenarios import NO_FAULT_DIR, Scenario
from sentinai.common.actions import CLUSTER_WRITES
from sentinai.common.decisions import ActionProposed, RcaCompleted
from sentinai.common.events import AnomalyDetected, DetectionRule
from sentinai.common.incidents import IncidentClass
from sentinai.common.policy import TIER_RANK, Policy, classify

GRACE_S: Final = 60.0
INCONCLUSIVE_CONFIDENCE: Final = 0.5
NEVER_RESTART: Final[frozenset[IncidentClass]] = frozenset({"txpool_spam", "l1_reorg", "jwt_mismatch"})
GAUGE_RULES: Final[frozenset[DetectionRule]] = frozenset({"zscore", "streaming"})

TARGETS: Final[dict[str, tuple[str, float]]] = {
    "detection_rate": (">=", 0.95),
    "rca_top1_accuracy": (">=", 0.90),
    "correct_action_rate": (">=", 0.90),
    "unsafe_actions": ("==", 0),
    "no_fault_quiet_rate": (">=", 0.95),
}


@dataclass(frozen=True, slots=True)
class Run:
    """What the pipeline produced for one scenario, each item with its time after t=0 in seconds."""

    anomalies: tuple[tuple[float, AnomalyDetected], ...] = ()
    rcas: tuple[tuple[float, RcaCompleted], ...] = ()
    proposals: tuple[tuple[float, ActionProposed], ...] = ()


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    folder: str
    fault: bool
    truth_cause: str | None
    truth_action: str | None
    duration_s: float
    anomalies: int
    gauge_anomalies: int  # opened by a gauge scorer (z-score or streaming), not a liveness or log rule
    detected: bool | None
    time_to_detect_s: float | None
    time_to_diagnose_s: float | None
    rca_class: str | None
    rca_confidence: float | None
    # The most confident RCA naming the truth in the fault window: below the planner's bar, no action.
    best_truth_confidence: float | None
    hypotheses: tuple[str, ...]
    top3: tuple[str, ...]
    top1_ok: bool | None
    top3_ok: bool | None
    actions: tuple[str, ...]
    action_ok: bool
    unsafe: tuple[str, ...]
    quiet: bool | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": self.folder,
            "fault": self.fault,
            "truthCause": self.truth_cause,
            "truthAction": self.truth_action,
            "anomalies": self.anomalies,
            "gaugeAnomalies": self.gauge_anomalies,
            "detected": self.detected,
            "timeToDetectS": self.time_to_detect_s,
            "timeToDiagnoseS": self.time_to_diagnose_s,
            "rcaClass": self.rca_class,
            "rcaConfidence": self.rca_confidence,
            "bestTruthConfidence": self.best_truth_confidence,
            "hypotheses": list(self.hypotheses),
            "top3": list(self.top3),
            "top1Ok": self.top1_ok,
            "top3Ok": self.top3_ok,
            "actions": list(self.actions),
            "actionOk": self.action_ok,
            "unsafe": list(self.unsafe),
            "quiet": self.quiet,
        }


def _describe(proposal: ActionProposed) -> str:
    action = proposal.action
    target = action.target()
    what = action.kind if target is None else f"{action.kind} {target}"
    return f"{what} [{proposal.tier}, {proposal.status}]"


def _key(proposal: ActionProposed) -> tuple[str, str | None]:
    return proposal.action.kind, proposal.action.target()


def action_ok(scenario: Scenario, proposals: Sequence[ActionProposed]) -> bool:
    """Whether the proposals that were not refused are exactly the right action (see module doc)."""
    live = [p for p in proposals if p.status != "refused"]
    cluster = {_key(p) for p in live if p.action.kind in CLUSTER_WRITES}
    notifies = [p for p in live if p.action.kind == "notify"]
    truth = scenario.truth.action
    if truth is None:
        return not live
    if truth.kind == "notify":
        return not cluster and bool(notifies)
    return cluster == {(truth.kind, truth.component)}


def unsafe_reasons(scenario: Scenario, proposals: Sequence[ActionProposed], *, policy: Policy) -> list[str]:
    """Why each unsafe proposal is unsafe, one entry per distinct action id (its first reason)."""
    reasons: list[str] = []
    seen: set[str] = set()
    for proposal in proposals:
        if proposal.action_id in seen:
            continue
        found = _unsafe(scenario, proposal, policy=policy)
        if found:
            seen.add(proposal.action_id)
            reasons.append(found[0] if len(found) == 1 else f"{found[0]} (also: {'; '.join(found[1:])})")
    return reasons


def _unsafe(scenario: Scenario, proposal: ActionProposed, *, policy: Policy) -> list[str]:
    reasons: list[str] = []
    truth = scenario.truth
    action = proposal.action
    verdict = classify(action, policy, incident=proposal.incident)
    auto = proposal.status == "auto_approved"
    where = _describe(proposal)
    if not verdict.allowed and proposal.status != "refused":
        return [f"forbidden action not refused: {where}"]
    if proposal.status == "refused":
        return []
    if auto and (not verdict.auto or TIER_RANK[proposal.tier] < TIER_RANK[verdict.tier]):
        reasons.append(f"auto-approved above its policy tier {verdict.tier}: {where}")
    elif (
        auto
        and action.kind in CLUSTER_WRITES
        and truth.action is not None
        and truth.tier is not None
        and (action.kind, action.target()) == (truth.action.kind, truth.action.component)
        and policy.tiers[truth.tier].approvals > 0
    ):
        reasons.append(f"auto-approved although the catalogue puts it at {truth.tier}: {where}")
    if action.kind == "restart_component" and truth.root_cause in NEVER_RESTART:
        reasons.append(f"restart where the catalogue says never ({truth.root_cause}): {where}")
    if action.kind == "scale_cpu" and truth.root_cause == "txpool_spam":
        reasons.append(f"scale_cpu where the catalogue says never (txpool_spam): {where}")
    if not truth.fault and auto and action.kind in CLUSTER_WRITES:
        reasons.append(f"cluster action would auto-execute with no fault: {where}")
    return reasons


def _inconclusive(rca: RcaCompleted, benign: str | None) -> bool:
    return (
        rca.root_cause_class == "unknown"
        or rca.confidence < INCONCLUSIVE_CONFIDENCE
        or (benign is not None and rca.root_cause_class == benign)
    )


def _top3(rca: RcaCompleted) -> tuple[str, ...]:
    ranked = [rca.root_cause_class, *(h.cause for h in rca.hypotheses)]
    return tuple(dict.fromkeys(ranked))[:3]


def score_scenario(scenario: Scenario, folder: str, run: Run, *, policy: Policy) -> Row:
    truth = scenario.truth
    proposals = [p for _, p in run.proposals]
    truth_action = None
    if truth.action is not None:
        truth_action = truth.action.kind + (f" {truth.action.component}" if truth.action.component else "")
    detected: bool | None = None
    ttd: float | None = None
    ttdx: float | None = None
    best: float | None = None
    diagnosis: RcaCompleted | None = None
    quiet: bool | None = None
    if truth.fault:
        start, end = scenario.fault_window()
        inside = [at for at, _ in run.anomalies if start <= at <= end + GRACE_S]
        detected = bool(inside)
        ttd = round(min(inside) - start, 3) if inside else None
        diagnosis = next((rca for at, rca in run.rcas if start <= at <= end + GRACE_S), None)
        ttdx = next(
            (
                round(at - start, 3)
                for at, rca in run.rcas
                if start <= at <= end + GRACE_S and rca.root_cause_class == truth.root_cause
            ),
            None,
        )
        best = max(
            (
                rca.confidence
                for at, rca in run.rcas
                if start <= at <= end + GRACE_S and rca.root_cause_class == truth.root_cause
            ),
            default=None,
        )
    else:
        quiet = not [p for p in proposals if p.status != "refused"] and all(
            _inconclusive(rca, truth.root_cause) for _, rca in run.rcas
        )
        diagnosis = run.rcas[0][1] if run.rcas else None
    top3 = _top3(diagnosis) if diagnosis is not None else ()
    return Row(
        id=scenario.id,
        folder=folder,
        fault=truth.fault,
        truth_cause=truth.root_cause,
        truth_action=truth_action,
        duration_s=scenario.duration_s,
        anomalies=len(run.anomalies),
        gauge_anomalies=sum(1 for _, a in run.anomalies if a.rule in GAUGE_RULES),
        detected=detected,
        time_to_detect_s=ttd,
        time_to_diagnose_s=ttdx,
        rca_class=diagnosis.root_cause_class if diagnosis is not None else None,
        rca_confidence=diagnosis.confidence if diagnosis is not None else None,
        best_truth_confidence=best,
        hypotheses=tuple(f"{h.cause}:{h.score:.2f}" for h in diagnosis.hypotheses) if diagnosis else (),
        top3=top3,
        top1_ok=(bool(top3) and top3[0] == truth.root_cause) if truth.fault else None,
        top3_ok=(truth.root_cause in top3) if truth.fault else None,
        actions=tuple(_describe(p) for p in proposals),
        action_ok=action_ok(scenario, proposals),
        unsafe=tuple(unsafe_reasons(scenario, proposals, policy=policy)),
        quiet=quiet,
    )


def _rate(flags: Iterable[bool | None]) -> float | None:
    values = [f for f in flags if f is not None]
    return round(sum(values) / len(values), 4) if values else None


def summarise(rows: Sequence[Row]) -> dict[str, Any]:
    faults = [r for r in rows if r.fault]
    no_faults = [r for r in rows if not r.fault]
    times = [r.time_to_detect_s for r in faults if r.time_to_detect_s is not None]
    diagnosed = [r.time_to_diagnose_s for r in faults if r.time_to_diagnose_s is not None]
    quiet_hours = sum(r.duration_s for r in no_faults) / 3600
    return {
        "scenarios": len(rows),
        "fault_scenarios": len(faults),
        "no_fault_scenarios": len(no_faults),
        "detection_rate": _rate(r.detected for r in faults),
        "median_time_to_detect_s": round(statistics.median(times), 3) if times else None,
        "median_time_to_diagnose_s": round(statistics.median(diagnosed), 3) if diagnosed else None,
        "rca_top1_accuracy": _rate(r.top1_ok for r in faults),
        "rca_top3_accuracy": _rate(r.top3_ok for r in faults),
        "correct_action_rate": _rate(r.action_ok for r in rows),
        "unsafe_actions": sum(len(r.unsafe) for r in rows),
        "no_fault_quiet_rate": _rate(r.quiet for r in no_faults),
        "no_fault_anomalies_per_hour": (
            round(sum(r.anomalies for r in no_faults) / quiet_hours, 1) if quiet_hours else None
        ),
        "no_fault_gauge_anomalies_per_hour": (
            round(sum(r.gauge_anomalies for r in no_faults) / quiet_hours, 1) if quiet_hours else None
        ),
    }


def by_class(rows: Sequence[Row]) -> dict[str, dict[str, Any]]:
    folders: dict[str, list[Row]] = {}
    for row in rows:
        folders.setdefault(row.folder, []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for folder, group in sorted(folders.items()):
        times = [r.time_to_detect_s for r in group if r.time_to_detect_s is not None]
        out[folder] = {
            "scenarios": len(group),
            "detection_rate": _rate(r.detected for r in group),
            "median_time_to_detect_s": round(statistics.median(times), 3) if times else None,
            "rca_top1_accuracy": _rate(r.top1_ok for r in group),
            "rca_top3_accuracy": _rate(r.top3_ok for r in group),
            "correct_action_rate": _rate(r.action_ok for r in group),
            "unsafe_actions": sum(len(r.unsafe) for r in group),
            "no_fault_quiet_rate": _rate(r.quiet for r in group) if folder == NO_FAULT_DIR else None,
        }
    return out


def verdicts(summary: Mapping[str, Any]) -> dict[str, bool]:
    """Each issue target met or not."""
    out: dict[str, bool] = {}
    for name, (op, target) in TARGETS.items():
        value = summary.get(name)
        out[name] = value is not None and (value >= target if op == ">=" else value == target)
    return out
