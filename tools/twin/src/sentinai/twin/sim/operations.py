"""Operations the control API and the Kubernetes API apply between ticks: incidents, traffic, workload
rollouts, pod deletions and the sequencer/batcher/proposer admin switches."""

from __future__ import annotations

from dataclasses import replace

from sentinai.twin.incidents import CURED_BY_RESTART
from sentinai.twin.model import RESTART_TICKS, ChainState, Component, Incident, Pod, Resources


def inject(state: ChainState, incident: Incident) -> ChainState:
    """Start ``incident``; injecting a kind that is already active replaces its parameters."""
    kept = tuple(i for i in state.incidents if i.kind != incident.kind)
    return replace(state, incidents=(*kept, incident))


def clear(state: ChainState, kind: str | None = None) -> tuple[ChainState, tuple[str, ...]]:
    """Stop one incident kind, or all of them; returns the kinds that were active."""
    cleared = tuple(i.kind for i in state.incidents if kind is None or i.kind == kind)
    remaining = tuple(i for i in state.incidents if i.kind not in cleared)
    return replace(state, incidents=remaining), cleared


def set_traffic(state: ChainState, multiplier: float) -> ChainState:
    return replace(state, traffic_multiplier=multiplier)


def roll(
    state: ChainState, component: Component, *, resources: Resources, replicas: int, template_changed: bool
) -> ChainState:
    """A workload spec change: a new pod template replaces the pod, as a rollout does."""
    before = state.pods[component]
    pod = replace(before, resources=resources, replicas=replicas)
    if template_changed:
        pod = _replaced(replace(pod, revision=pod.revision + 1), tick=state.tick)
        return _cured(replace(state, pods={**state.pods, component: pod}), component)
    if replicas > 0 and not before.exists:
        pod = _replaced(pod, tick=state.tick)
    return replace(state, pods={**state.pods, component: pod})


def restart_pod(state: ChainState, component: Component) -> ChainState:
    """The pod was deleted: its controller creates a fresh one (new name for a Deployment)."""
    pod = _replaced(state.pods[component], tick=state.tick)
    return _cured(replace(state, pods={**state.pods, component: pod}), component)


def _cured(state: ChainState, component: Component) -> ChainState:
    """A fresh process clears the faults that live in it (a wedged sequencer, lost peers …).

    Faults outside the process — L1 down, an empty batcher key, a wrong JWT, a full disk — survive a
    restart, as they do on a real chain; so does any incident injected with ``persist=1``.
    """
    cures = CURED_BY_RESTART.get(component, frozenset())
    kept = tuple(i for i in state.incidents if i.kind not in cures or i.param("persist", 0.0) > 0)
    return state if len(kept) == len(state.incidents) else replace(state, incidents=kept)


def _replaced(pod: Pod, *, tick: int) -> Pod:
    return replace(
        pod,
        incarnation=pod.incarnation + 1,
        restart_count=0,
        last_terminated=None,
        created_tick=tick,
        started_tick=tick,
        down_ticks=RESTART_TICKS,
        waiting_reason="ContainerCreating",
        cpu_cores=0.0,
        memory_bytes=0,
    )


def set_active(state: ChainState, component: Component, active: bool) -> ChainState:
    """admin_startSequencer / admin_stopBatcher and friends."""
    match component:
        case "op-node":
            return replace(state, sequencer_active=active)
        case "op-batcher":
            return replace(state, batcher_active=active)
        case "op-proposer":
            return replace(state, proposer_active=active)
    return state
