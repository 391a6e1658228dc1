"""The incident catalogue: what each injectable fault changes in the simulation.

Each incident is a set of switches and knobs (``Effects``) the simulation step reads; the log lines
the fault produces are written by the step next to the behaviour they accompany. Clearing an
incident removes its effects, and the chain recovers by the same rules it runs on normally.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from sentinai.common.incidents import IncidentClass
from sentinai.twin.model import Component, Incident

# The twin's incident kinds, named by what an operator injects, mapped to the class a
# correct diagnosis names.
TWIN_KIND_TO_CLASS: Final[dict[str, IncidentClass]] = {
    "cpu_spike": "op_geth_cpu_saturation",
    "txpool_flood": "txpool_spam",
    "sequencer_stall": "sequencer_stall",
    "l1_rpc_outage": "l1_rpc_outage",
    "batcher_failure": "batcher_failure",
    "op_geth_oom": "op_geth_oom",
    "peer_loss": "peer_loss",
    "disk_pressure": "disk_pressure",
    "engine_api_failure": "engine_api_failure",
    "jwt_mismatch": "jwt_mismatch",
    "proposer_failure": "proposer_failure",
    "l1_reorg": "l1_reorg",
}

# kind → (what it does, default parameters)
KINDS: Final[dict[str, tuple[str, dict[str, float]]]] = {
    "cpu_spike": ("traffic and op-geth CPU x factor; saturation stretches blocks", {"factor": 3.5}),
    "txpool_flood": ("spam fills the pool to the 5120 cap; full blocks, base fee rising", {"tps": 300.0}),
    "sequencer_stall": ("op-node stops sequencing: unsafe head flat, pool grows", {}),
    "l1_rpc_outage": ("L1 RPC unreachable: head_l1 and safe_l2 flat, unsafe continues", {}),
    "batcher_failure": ("batcher cannot post (insufficient funds): safe head flat", {}),
    "op_geth_oom": ("op-geth leaks memory until OOMKilled, repeatedly", {"leakMiBPerTick": 300.0}),
    "peer_loss": ("all p2p peers gone", {}),
    "disk_pressure": ("op-geth data volume nearly full", {"freeGiB": 1.2}),
    "engine_api_failure": ("op-node cannot reach op-geth's engine API on 8551", {}),
    "jwt_mismatch": ("op-node's JWT secret differs from op-geth's: op-node crash loops", {}),
    "proposer_failure": ("proposer cannot send output proposals", {}),
    "l1_reorg": ("L1 re-orgs its last blocks (repeats every 60 ticks while active)", {"depth": 3.0}),
}
REORG_EVERY_TICKS: Final = 60


# What restarting a component's process fixes. Everything else needs a human or a different action.
CURED_BY_RESTART: Final[Mapping[Component, frozenset[str]]] = {
    "op-node": frozenset({"sequencer_stall", "peer_loss"}),
    "op-geth": frozenset({"engine_api_failure"}),
    "op-proposer": frozenset({"proposer_failure"}),
}


class UnknownIncidentError(ValueError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown incident kind {kind!r}; known kinds: {', '.join(KINDS)}")
        self.kind = kind


class InvalidParamsError(ValueError):
    pass


def make(kind: str, params: Mapping[str, object] | None, *, tick: int) -> Incident:
    """An incident of ``kind`` starting at ``tick``, with its defaults overridden by ``params``."""
    if kind not in KINDS:
        raise UnknownIncidentError(kind)
    # ``persist=1`` keeps an incident through a restart of the component that would otherwise cure it.
    merged = {**KINDS[kind][1], "persist": 0.0}
    for name, value in (params or {}).items():
        if name not in merged:
            known = ", ".join(merged) or "none"
            raise InvalidParamsError(f"{kind} has no parameter {name!r} (parameters: {known})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidParamsError(f"{kind}.{name} must be a non-negative number, got {value!r}")
        merged[name] = float(value)
    return Incident(kind=kind, params=tuple(sorted(merged.items())), since_tick=tick)


@dataclass(frozen=True, slots=True)
class Effects:
    traffic_factor: float = 1.0
    spam_tps: float = 0.0
    sequencer_stalled: bool = False
    l1_down: bool = False
    batcher_failing: bool = False
    proposer_failing: bool = False
    leak_bytes_per_tick: int = 0
    peers_lost: bool = False
    disk_free_bytes: int | None = None
    engine_failing: bool = False
    jwt_bad: bool = False
    reorg_depth: int = 0  # > 0 on the ticks an L1 re-org happens


def effects(incidents: Iterable[Incident], *, tick: int) -> Effects:
    """The combined effect of the active incidents on the tick being simulated."""
    fx = Effects()
    for incident in incidents:
        match incident.kind:
            case "cpu_spike":
                fx = replace(fx, traffic_factor=incident.param("factor", 3.5))
            case "txpool_flood":
                fx = replace(fx, spam_tps=incident.param("tps", 300.0))
            case "sequencer_stall":
                fx = replace(fx, sequencer_stalled=True)
            case "l1_rpc_outage":
                fx = replace(fx, l1_down=True)
            case "batcher_failure":
                fx = replace(fx, batcher_failing=True)
            case "proposer_failure":
                fx = replace(fx, proposer_failing=True)
            case "op_geth_oom":
                fx = replace(fx, leak_bytes_per_tick=int(incident.param("leakMiBPerTick", 300.0) * 2**20))
            case "peer_loss":
                fx = replace(fx, peers_lost=True)
            case "disk_pressure":
                fx = replace(fx, disk_free_bytes=int(incident.param("freeGiB", 1.2) * 2**30))
            case "engine_api_failure":
                fx = replace(fx, engine_failing=True)
            case "jwt_mismatch":
                fx = replace(fx, jwt_bad=True)
            case "l1_reorg":
                if (tick - incident.since_tick) % REORG_EVERY_TICKS == 1:
                    fx = replace(fx, reorg_depth=max(1, int(incident.param("depth", 3.0))))
    return fx
