"""The incident catalogue's classes: the names diagnosis, planning and evaluation agree on."""

from __future__ import annotations

from typing import Final, Literal, get_args

IncidentClass = Literal[
    "sequencer_stall",
    "l1_rpc_outage",
    "batcher_failure",
    "proposer_failure",
    "op_geth_cpu_saturation",
    "op_geth_oom",
    "engine_api_failure",
    "jwt_mismatch",
    "disk_pressure",
    "peer_loss",
    "l1_reorg",
    "txpool_spam",
]
RootCauseClass = IncidentClass | Literal["unknown"]

INCIDENT_CLASSES: Final[tuple[IncidentClass, ...]] = get_args(IncidentClass)

# The OP Stack twin's incident kinds, named by what an operator injects, mapped to the class a
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
