"""Pure decisions of the executor: re-check, patch bodies, rollout and verification judgement, rollback."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sentinai.common import catalog, quantity
from sentinai.common.actions import (
    CLUSTER_WRITES,
    Action,
    ExecDebug,
    RaiseMemory,
    RestartComponent,
    ScaleCpu,
    ScaleDown,
)
from sentinai.common.chains import ChainConfig
from sentinai.common.decisions import ActionApproved, VerifySpec
from sentinai.common.events import COMPONENTS, MetricSample, derived_id
from sentinai.common.identity import distinct_identities
from sentinai.common.incidents import STALL_BLOCK_TIMES
from sentinai.common.policy import Policy, classify

RESTARTED_AT: Final = "kubectl.kubernetes.io/restartedAt"
WorkloadKind = Literal["StatefulSet", "Deployment"]
Body = dict[str, Any]
_KEY_TOKEN = re.compile(r"^[A-Za-z0-9_=-]{1,200}$")


# ------------------------------------------------------------------------------------------ recheck


def recheck(
    approved: ActionApproved,
    policy: Policy,
    *,
    chains: Mapping[str, ChainConfig],
    read_only: bool,
    simulate: bool,
    now: datetime,
    max_age_s: float,
) -> str | None:
    """Why the executor refuses ``approved`` (whatever the planner said), or ``None`` to go ahead."""
    action = approved.action
    chain = chains.get(approved.chain_id)
    if chain is None:
        return f"unknown chain {approved.chain_id!r}: not in the executor's chains file"
    age_s = (now - approved.occurred_at).total_seconds()
    if age_s > max_age_s:
        return f"stale approval: approved {age_s:.0f}s ago (older than {max_age_s:.0f}s)"
    distinct = distinct_identities(approved.approvers)  # alice and ALICE are one person
    verdict = classify(action, policy, incident=approved.incident, approvals=distinct)
    if verdict.refusal is not None:
        return verdict.refusal
    if distinct < verdict.approvals_required:
        return (
            f"tier {verdict.tier} needs {verdict.approvals_required} distinct approver(s), "
            f"the approval carries {distinct}"
        )
    if read_only and action.kind in CLUSTER_WRITES:
        return "read-only mode (SENTINAI_READ_ONLY_MODE=true) blocks every write"
    if isinstance(action, ExecDebug):
        return "exec_debug is not implemented by the executor: it never execs into chain pods"
    target = action.target()
    if target is not None and target not in COMPONENTS:
        return f"{target!r} is not a component of the catalogue ({', '.join(COMPONENTS)})"
    if not simulate and action.kind in CLUSTER_WRITES and chain.kubeconfig is None:
        return f"chain {chain.id!r} has no kubeconfig in the chains file: its cluster cannot be written"
    return None


def effect_key(action_id: str) -> str:
    """State key of the once-only effect record; ids that are not key-safe are hashed."""
    if _KEY_TOKEN.match(action_id):
        return f"effects.{action_id}"
    return "effects.derived-" + derived_id("effect", action_id)


def cooldown_key(chain_id: str, component: str) -> str:
    return f"cooldown.{chain_id}.{component}"


# ---------------------------------------------------------------------------------------- workloads


@dataclass(frozen=True, slots=True)
class Workload:
    """The part of a Deployment/StatefulSet the executor changes, as it was before the change."""

    kind: WorkloadKind
    name: str
    namespace: str
    container: str
    generation: int
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def previous(self) -> dict[str, Any]:
        """The captured spec, as published in ``ActionExecuted.previous``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "container": self.container,
            "generation": self.generation,
            "resources": self.resources,
            "templateAnnotations": self.annotations,
        }


class WorkloadShapeError(ValueError):
    """The workload has no container named after the component."""


def workload_from_json(obj: Mapping[str, Any], *, component: str) -> Workload:
    meta = obj.get("metadata") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    container = next((c for c in containers if c.get("name") == component), None)
    if container is None:
        names = [c.get("name") for c in containers]
        raise WorkloadShapeError(
            f"{obj.get('kind')} {meta.get('name')} has no container {component!r}: {names}"
        )
    resources = container.get("resources") or {}
    return Workload(
        kind="StatefulSet" if obj.get("kind") == "StatefulSet" else "Deployment",
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace")),
        container=component,
        generation=int(meta.get("generation") or 0),
        resources={
            section: {k: str(v) for k, v in (resources.get(section) or {}).items()}
            for section in ("requests", "limits")
            if resources.get(section)
        },
        annotations=dict((template.get("metadata") or {}).get("annotations") or {}),
    )


def workload_from_previous(previous: Mapping[str, Any]) -> Workload:
    """The ``Workload`` that ``Workload.previous()`` captured (kept in the effect record)."""
    return Workload(
        kind="StatefulSet" if previous.get("kind") == "StatefulSet" else "Deployment",
        name=str(previous["name"]),
        namespace=str(previous["namespace"]),
        container=str(previous["container"]),
        generation=int(previous.get("generation") or 0),
        resources={
            section: {k: str(v) for k, v in values.items()}
            for section, values in (previous.get("resources") or {}).items()
        },
        annotations={k: str(v) for k, v in (previous.get("templateAnnotations") or {}).items()},
    )


def patch_landed(live: Workload, forward: Body) -> bool:
    """Does ``live`` already carry everything ``forward`` sets? (Quantities compare by value.)"""
    template = forward.get("spec", {}).get("template", {})
    wanted_annotations: Mapping[str, str] = (template.get("metadata") or {}).get("annotations") or {}
    if any(live.annotations.get(k) != v for k, v in wanted_annotations.items()):
        return False
    containers = (template.get("spec") or {}).get("containers") or []
    changed: Mapping[str, Mapping[str, str | None]] = containers[0].get("resources", {}) if containers else {}
    return all(
        quantity.same(live.resources.get(section, {}).get(key), value)
        for section, values in changed.items()
        for key, value in values.items()
    )


@dataclass(frozen=True, slots=True)
class Rollout:
    generation: int
    observed_generation: int
    replicas: int
    ready_replicas: int

    @property
    def ready(self) -> bool:
        return self.observed_generation >= self.generation and self.ready_replicas == self.replicas


def rollout_from_json(obj: Mapping[str, Any]) -> Rollout:
    status = obj.get("status") or {}
    replicas = (obj.get("spec") or {}).get("replicas")
    return Rollout(
        generation=int((obj.get("metadata") or {}).get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        replicas=1 if replicas is None else int(replicas),
        ready_replicas=int(status.get("readyReplicas") or 0),
    )


# ------------------------------------------------------------------------------------------ patches


def _container_patch(component: str, container: Body) -> Body:
    return {"spec": {"template": {"spec": {"containers": [{"name": component, **container}]}}}}


def _resource_patch(workload: Workload, resource: str, *, request: str, limit: str) -> Body:
    """Request and limit to the new value; an existing limit above the new value is kept."""
    current = quantity.parse_or_none(workload.resources.get("limits", {}).get(resource, ""))
    wanted = quantity.parse_or_none(limit)
    requests = {resource: request}
    if current is not None and wanted is not None and current > wanted:
        return _container_patch(workload.container, {"resources": {"requests": requests}})
    return _container_patch(
        workload.container, {"resources": {"requests": requests, "limits": {resource: limit}}}
    )


def patch_for(action: Action, workload: Workload, *, now: datetime) -> Body | None:
    """The strategic-merge patch that carries out ``action`` on ``workload``; ``None`` if none applies."""
    match action:
        case ScaleCpu(vcpu=vcpu) | ScaleDown(vcpu=vcpu):
            value = quantity.cpu(vcpu)
            return _resource_patch(workload, "cpu", request=value, limit=value)
        case RaiseMemory(memory_gib=gib):
            limit = quantity.memory(gib)
            request = workload.resources.get("requests", {}).get("memory", "")
            current, wanted = quantity.parse_or_none(request), quantity.parse_or_none(limit)
            # The request stays where it was unless it would exceed the new limit.
            keep = current is not None and wanted is not None and current <= wanted
            body = {"requests": {"memory": request if keep else limit}, "limits": {"memory": limit}}
            return _container_patch(workload.container, {"resources": body})
        case RestartComponent():
            annotations = {RESTARTED_AT: now.isoformat(timespec="seconds")}
            return {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    return None


def rollback_patch(workload: Workload, forward: Body) -> Body | None:
    """Undo exactly what ``forward`` changed in the container's resources; ``None`` if it changed none.

    A key the workload did not have before is deleted (``null``), so an added limit goes away too.
    A restart changes only the template annotation: a restart cannot be taken back.
    """
    containers = forward.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    changed: Mapping[str, Mapping[str, str]] = containers[0].get("resources", {}) if containers else {}
    if not changed:
        return None
    restore = {
        section: {key: workload.resources.get(section, {}).get(key) for key in values}
        for section, values in changed.items()
    }
    return _container_patch(workload.container, {"resources": restore})


# ------------------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class Judgement:
    passed: bool
    reason: str


def in_range(value: float, spec: VerifySpec) -> bool:
    if spec.below is not None and not value < spec.below:
        return False
    return not (spec.above is not None and not value > spec.above)


def _bound(spec: VerifySpec) -> str:
    parts = ([f"< {spec.below:g}"] if spec.below is not None else []) + (
        [f"> {spec.above:g}"] if spec.above is not None else []
    )
    return " and ".join(parts) or "any value"


def judge(
    samples: Sequence[MetricSample],
    spec: VerifySpec | None,
    *,
    since: datetime,
    block_time_s: float,
    consecutive: int,
    stall_block_times: float = STALL_BLOCK_TIMES,
) -> Judgement:
    """Is the chain healthy again, judged only on samples taken at or after ``since``?

    Healthy means op-geth's head advanced across those samples and is fresh in the latest one, and
    the ``spec`` metric was in range in each of the last ``consecutive`` samples that carry it. A
    failed judgement names every check that failed, so a rollback says all that was wrong.
    """
    fresh = [s for s in samples if s.occurred_at >= since and s.target_up]
    head = _judge_head(fresh, block_time_s=block_time_s, stall_block_times=stall_block_times)
    metric = None if spec is None else _judge_metric(fresh, spec, consecutive=consecutive)
    failed = [j.reason for j in (head, metric) if j is not None and not j.passed]
    if failed:
        return Judgement(False, "; ".join(failed))
    return Judgement(True, head.reason if metric is None else f"{head.reason}; {metric.reason}")


def _judge_head(fresh: Sequence[MetricSample], *, block_time_s: float, stall_block_times: float) -> Judgement:
    geth = [s for s in fresh if s.component == "op-geth" and catalog.BLOCK_HEIGHT in s.metrics]
    if len(geth) < 2:
        return Judgement(False, f"{len(geth)} op-geth head sample(s) since the rollout, need 2")
    first, last = geth[0].metrics[catalog.BLOCK_HEIGHT], geth[-1].metrics[catalog.BLOCK_HEIGHT]
    if last <= first:
        return Judgement(False, f"blocks not advancing: op-geth head stuck at {last:.0f}")
    age = geth[-1].metrics.get(catalog.SECONDS_SINCE_HEAD)
    limit = stall_block_times * block_time_s
    if age is not None and age > limit:
        return Judgement(False, f"op-geth head is {age:.1f}s old (limit {limit:g}s)")
    return Judgement(True, f"blocks advancing ({first:.0f} → {last:.0f})")


def _judge_metric(fresh: Sequence[MetricSample], spec: VerifySpec, *, consecutive: int) -> Judgement:
    values = [
        s.metrics[spec.metric] for s in fresh if s.component == spec.component and spec.metric in s.metrics
    ]
    recent = values[-consecutive:]
    name = f"{spec.component} {spec.metric}"
    if len(recent) < consecutive:
        return Judgement(False, f"{len(recent)}/{consecutive} samples of {name} since the rollout")
    shown = ", ".join(f"{v:g}" for v in recent)
    if not all(in_range(v, spec) for v in recent):
        return Judgement(False, f"{name} not back in range ({_bound(spec)}): last {shown}")
    return Judgement(True, f"{name} {_bound(spec)} in the last {consecutive} samples ({shown})")
