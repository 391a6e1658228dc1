"""The incident catalogue's log markers: every one recognised in both formats the components print.

op-node, op-batcher and op-proposer print logfmt by default and terminal format with
``--log.format=terminal``; op-geth the other way round. A marker must hold in either.
"""

from __future__ import annotations

import pytest

from sentinai.common.incidents import (
    INCIDENT_CLASSES,
    MARKERS,
    MARKERS_OF,
    SPECS,
    IncidentClass,
    Marker,
    classify_line,
)

# (component, level, message, fields, the class a line names by itself or None for a supporting marker)
EXAMPLES: list[tuple[str, str, str, dict[str, str], IncidentClass | None]] = [
    ("op-node", "error", "Engine failed temporarily, backing off sequencer",
     {"err": "temp: failed to start building on top of L2 chain: context deadline exceeded"},
     "sequencer_stall"),
    ("op-node", "error", "Sequencer temporarily could not seal block", {"err": "temp: missing payload"},
     "sequencer_stall"),
    ("op-node", "error", "sequencer failed to start building new block with unclassified error",
     {"err": "bad"}, "sequencer_stall"),
    ("op-node", "warn", "sequencer has fallen behind safe head by more than lag, stalling", {"head": "0x42"},
     "sequencer_stall"),
    ("op-node", "error", "Sequencer encountered reset signal, aborting work", {"err": "reset: x"}, None),
    ("op-node", "warn", "Sequencer has been stopped", {}, "sequencer_stall"),
    ("op-node", "warn", "L1 temporary error", {"err": "temp: failed to fetch L1 block info: 429"},
     "l1_rpc_outage"),
    ("op-node", "warn", "failed to poll L1 block", {"label": "safe", "err": "dial tcp: i/o timeout"},
     "l1_rpc_outage"),
    ("op-node", "error", "l1 heads subscription error", {"err": "EOF"}, "l1_rpc_outage"),
    ("op-node", "warn", "Next L2 block time is past the sequencer drift + current origin time",
     {"current": "0xab:100"}, "l1_rpc_outage"),
    ("op-node", "error", "Error finding next L1 Origin", {"err": "not found"}, "l1_rpc_outage"),
    ("op-node", "error", "failed to fetch runtime config data", {"err": "missing trie node"},
     "l1_rpc_outage"),
    ("op-node", "warn", "Engine temporary error",
     {"err": "temp: failed to fetch L1 block info and receipts: not found"}, "l1_rpc_outage"),
    ("op-batcher", "error", "Failed to query L1 tip", {"err": "dial tcp: refused"}, None),
    ("op-batcher", "warn", "unable to publish transaction",
     {"err": "insufficient funds for gas * price + value"}, "batcher_failure"),
    ("op-batcher", "warn", "Failed to create a transaction, will retry",
     {"err": "gas required exceeds allowance (0)"}, "batcher_failure"),
    ("op-batcher", "warn", "Failed to create a transaction, will retry", {"err": "timeout"},
     "batcher_failure"),
    ("op-batcher", "error", "Transaction failed to send", {"err": "nonce too high"}, None),
    ("op-batcher", "warn", "Channel timed out", {"id": "405adb"}, "batcher_failure"),
    ("op-batcher", "warn", "transaction is underpriced", {"service": "batcher"}, None),
    ("op-proposer", "error", "Failed to send proposal transaction", {"err": "context deadline exceeded"},
     "proposer_failure"),
    ("op-proposer", "warn", "Error getting output", {"err": "not found"}, "proposer_failure"),
    ("op-proposer", "info", "Proposer tx successfully published but reverted", {"tx": "0x1"},
     "proposer_failure"),
    ("op-proposer", "warn", "unable to publish transaction", {"err": "gas required exceeds allowance (0)"},
     "proposer_failure"),
    ("op-proposer", "warn", "Failed to create a transaction, will retry", {"err": "timeout"}, None),
    ("op-geth", "warn", "Database compacting, degraded performance", {"database": "/data/geth/chaindata"},
     "op_geth_cpu_saturation"),
    ("op-geth", "warn", "Block building is interrupted", {"allowance": "2s"}, "op_geth_cpu_saturation"),
    ("op-geth", "crit", "fatal error: runtime: out of memory", {}, "op_geth_oom"),
    ("op-geth", "warn", "Unclean shutdown detected", {"booted": "2026-11-26T21:02:40+0000", "age": "2h"},
     "op_geth_oom"),
    ("op-node", "warn", "Failed to share forkchoice-updated signal",
     {"err": "Post http://op-geth:8551: dial tcp: connection refused"}, "engine_api_failure"),
    ("op-node", "warn", "Derivation process temporary error",
     {"err": "engine stage failed: temp: forkchoice update failed"}, "engine_api_failure"),
    ("op-node", "error", "error getting latest header", {"err": "403 Forbidden: invalid host specified"},
     "engine_api_failure"),
    ("op-node", "warn", "Engine temporary error", {"err": "temp: context canceled"}, None),
    ("op-geth", "warn", "Beacon client online, but no consensus updates received in a while. "
     "Please fix your beacon client to follow the chain!", {}, "engine_api_failure"),
    ("op-geth", "warn", "Served engine_forkchoiceUpdatedV3",
     {"reqid": "7", "err": "invalid forkchoice state"}, "engine_api_failure"),
    ("op-node", "error", "Error initializing the rollup node",
     {"err": "failed to initialize engine: 401 Unauthorized: signature is invalid"}, "jwt_mismatch"),
    ("op-geth", "info", "Generated JWT secret", {"path": "/data/geth/jwtsecret"}, "jwt_mismatch"),
    ("op-geth", "warn",
     "Disk space is running low. Geth will shutdown if disk space runs below critical level.",
     {"available": "1.2GiB", "path": "/data"}, "disk_pressure"),
    ("op-geth", "error", "Low disk space. Gracefully shutting down Geth to prevent database corruption.",
     {"available": "100MiB"}, "disk_pressure"),
    ("op-node", "error", "failed to write", {"err": "write /data/opnode: no space left on device"},
     "disk_pressure"),
    ("op-node", "warn", "error reconnecting to static peer", {"peer": "16Uiu2", "err": "dial backoff"},
     "peer_loss"),
    ("op-node", "warn", "static peer disconnected, reconnecting", {"peer": "16Uiu2"}, None),
    ("op-node", "info", "no peers ready to handle block requests for more P2P requests for L2 block history",
     {}, "peer_loss"),
    ("op-geth", "info", "Looking for peers", {"peercount": "0", "tried": "3", "static": "1"}, "peer_loss"),
    ("op-node", "warn", "L1 head signal indicates a possible L1 re-org",
     {"old_l1_head": "0xab", "new_l1_head_parent": "0xcd"}, "l1_reorg"),
    ("op-node", "warn", "Deriver system is resetting",
     {"err": "reset: detected L1 reorg from 0xab:10 to 0xcd:11 with conflicting parent 0x9f:10"}, "l1_reorg"),
    ("op-node", "info", "Walking back L1Block by hash", {"curr": "0xab:10", "next": "0xcd:9"}, None),
    ("op-node", "info", "L2 reorg: existing unsafe block does not match derived attributes from L1",
     {"err": "x"}, "l1_reorg"),
    ("op-geth", "warn", "Served eth_sendRawTransaction", {"reqid": "9", "err": "txpool is full"},
     "txpool_spam"),
]  # fmt: skip

HEALTHY: list[tuple[str, str, str, dict[str, str]]] = [
    ("op-node", "info", "Sequencer inserted block", {"block": "0xab:1019", "txs": "12"}),
    ("op-batcher", "info", "Transaction confirmed", {"tx": "0x77aa", "block": "0x1b:512"}),
    ("op-geth", "info", "Looking for peers", {"peercount": "2", "tried": "3", "static": "1"}),
    ("op-geth", "info", "Imported new potential chain segment", {"number": "100", "hash": "0xab"}),
    (
        "op-geth",
        "warn",
        "Served eth_sendRawTransaction",
        {"err": "insufficient funds for gas * price + value"},
    ),
    ("op-node", "warn", "failed to serve p2p sync request", {"err": "stream reset"}),
    ("op-node", "info", "L1 temporary error", {"err": "x"}),  # below the level that counts
]


def logfmt(level: str, msg: str, fields: dict[str, str]) -> str:
    parts = ["t=2026-11-26T23:14:15+0000", f"lvl={level}", f'msg="{msg}"']
    parts += [f'{k}="{v}"' if " " in v else f"{k}={v}" for k, v in fields.items()]
    return " ".join(parts)


def terminal(level: str, msg: str, fields: dict[str, str]) -> str:
    tag = {"crit": "CRIT", "error": "ERROR", "warn": "WARN", "info": "INFO"}[level]
    rest = " ".join(f'{k}="{v}"' if " " in v else f"{k}={v}" for k, v in fields.items())
    return f"{tag:<5}[11-26|23:14:15.123] {msg:<40} {rest}".rstrip()


FORMATS = pytest.mark.parametrize("render", [logfmt, terminal], ids=["logfmt", "terminal"])


def _id(example: tuple[object, ...]) -> str:
    return f"{example[0]}:{str(example[2])[:40]}"


@FORMATS
@pytest.mark.parametrize("example", EXAMPLES, ids=[_id(e) for e in EXAMPLES])
def test_each_message_is_recognised_in_both_formats(
    render: object, example: tuple[str, str, str, dict[str, str], IncidentClass | None]
) -> None:
    component, level, msg, fields, names = example
    line = render(level, msg, fields)  # type: ignore[operator]
    assert classify_line(line, component=component) == names, line
    assert any(m.matches(line, component=component) for m in MARKERS), line


@FORMATS
@pytest.mark.parametrize("example", HEALTHY, ids=[_id(e) for e in HEALTHY])
def test_healthy_lines_name_nothing(render: object, example: tuple[str, str, str, dict[str, str]]) -> None:
    component, level, msg, fields = example
    line = render(level, msg, fields)  # type: ignore[operator]
    assert classify_line(line, component=component) is None, line


def test_every_marker_has_an_example_in_both_formats() -> None:
    """No marker of the catalogue goes untested (a new one needs an example above)."""
    untested: list[Marker] = []
    for marker in MARKERS:
        for render in (logfmt, terminal):
            lines = [(c, render(level, msg, fields)) for c, level, msg, fields, _ in EXAMPLES]
            if not any(marker.matches(line, component=c) for c, line in lines):
                untested.append(marker)
    assert untested == []


def test_a_line_with_two_classes_messages_counts_for_both() -> None:
    line = logfmt(
        "error",
        "Error initializing the rollup node",
        {
            "err": "failed to initialize engine: 401 Unauthorized: signature is invalid; "
            "no space left on device"
        },
    )
    matched = {m.cls for m in MARKERS if m.matches(line, component="op-node")}
    assert {"jwt_mismatch", "disk_pressure"} <= matched


def test_every_class_is_in_the_catalogue_once_with_its_markers_sources_and_rules() -> None:
    assert set(SPECS) == set(INCIDENT_CLASSES)
    for cls in INCIDENT_CLASSES:
        if cls != "op_geth_oom":  # a killed process prints nothing; its markers are Go's and the kubelet's
            assert MARKERS_OF[cls], cls
        for marker in MARKERS_OF[cls]:
            assert marker.source, marker
    assert all(0 < m.weight <= 1 for m in MARKERS)
