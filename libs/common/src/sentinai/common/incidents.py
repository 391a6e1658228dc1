"""The incident catalogue, as data: classes, titles, tiers, components, log markers, evidence rules, remedies.

One home for what the detector (log markers), the rca (titles, markers, evidence rules), the planner
(remedies, evidence gate) and the policy agree on. The twin keeps its own strings: it plays the
outside world, and a test checks that it prints every marker it is meant to.

Why one file of ~500 lines: two thirds of it are the two tables (``SPECS``, ``MARKERS``), and a
reviewer checks a class's evidence rule against its log markers side by side; split, the tables
would drift apart. The code around them is small (lookups, one line classifier).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

from sentinai.common.events import Severity
from sentinai.common.loglines import INFO, WARN, line_level

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

# The defaults of ``settings.ChainRules`` (``SENTINAI_TXPOOL_CAP``, ``SENTINAI_STALL_BLOCK_TIMES``);
# a service reads the rule from its settings, which may override them.
# geth's legacypool default: 5120 pending slots (core/txpool/legacypool DefaultConfig.GlobalSlots).
TXPOOL_CAP: Final = 5120.0
# The OP Stack's stall rule (op-conductor: "unsafe head is not progressing as expected"): the unsafe
# head older than this many block times has stopped.
STALL_BLOCK_TIMES: Final = 3.0


# ------------------------------------------------------------------------------------ evidence rules


@dataclass(frozen=True, slots=True)
class Persistence:
    """How long a class's defining signal must hold: all of polls, block times and seconds.

    Polls count observations (a sample, or a poll that logged a marker line); the span is the event
    time from the first to the latest of them, so one poll never meets a rule that asks for two.
    """

    polls: int
    block_times: float = 0.0
    seconds: float = 0.0
    signals: int = 1  # independent signals (metric conditions, distinct log markers) seen at all

    def span_s(self, block_time_s: float) -> float:
        return max(self.block_times * block_time_s, self.seconds)

    def describe(self, block_time_s: float) -> str:
        span = self.span_s(block_time_s)
        held = f"{self.polls} poll{'s' if self.polls != 1 else ''}"
        if span > 0:
            held += f" over ≥ {span:g}s"
        if self.signals > 1:
            held += f", {self.signals} independent signals"
        return held


@dataclass(frozen=True, slots=True)
class EvidenceRule:
    """The minimum evidence for each step of an incident's life.

    A single sample, poll or log line may open an anomaly and an RCA card (``anomaly``, ``diagnosis``
    say what does); a proposal and an automatic execution need ``proposal`` and ``auto``.
    """

    anomaly: str
    diagnosis: str
    proposal: Persistence
    auto: Persistence


@dataclass(frozen=True, slots=True)
class ClassSpec:
    """What the catalogue says about a class: its name for people, its risk, the plan, who is hit."""

    title: str
    risk: Severity
    action_plan: str
    affected: tuple[str, ...]
    evidence: EvidenceRule
    # Classes whose specific evidence explains this class's symptoms (cause before symptom).
    caused_by: tuple[IncidentClass, ...] = ()


def _rule(
    anomaly: str, diagnosis: str, proposal: Persistence, auto: Persistence | None = None
) -> EvidenceRule:
    return EvidenceRule(anomaly=anomaly, diagnosis=diagnosis, proposal=proposal, auto=auto or proposal)


SPECS: Final[Mapping[IncidentClass, ClassSpec]] = {
    "sequencer_stall": ClassSpec(
        "Sequencer stall: op-node stopped producing unsafe blocks",
        "high",
        "Restart op-node (needs approval); check op-geth engine API health",
        ("op-node", "op-geth"),
        _rule(
            "the unsafe head older than 3 block times, or a sequencer marker line",
            "a stalled head, or sequencer marker lines",
            Persistence(polls=3, block_times=6, seconds=10),
        ),
        caused_by=(
            "jwt_mismatch",
            "engine_api_failure",
            "op_geth_oom",
            "disk_pressure",
            "l1_rpc_outage",
            "txpool_spam",
        ),
    ),
    "l1_rpc_outage": ClassSpec(
        "L1 RPC outage: op-node cannot read L1, so the safe head stopped",
        "high",
        "Switch op-node to a healthy L1 RPC endpoint or restart op-node (needs approval); "
        "check the L1 provider",
        ("op-node", "op-batcher", "op-proposer"),
        _rule(
            "the L1 head older than 60 s, or an L1 error line",
            "a stale L1 head or L1 error lines",
            Persistence(polls=3, seconds=30, signals=2),
        ),
    ),
    "batcher_failure": ClassSpec(
        "Batcher cannot post batches to L1: the safe head falls behind",
        "medium",
        "Notify: fund or fix the batcher key (a human must); "
        "restart op-batcher only if it is funded and still stuck",
        ("op-batcher", "op-node"),
        _rule(
            "a batcher error line, or the unsafe-safe lag out of its range",
            "batcher error lines, a growing lag or a low batcher balance",
            Persistence(polls=2, seconds=20),
        ),
        caused_by=("l1_rpc_outage",),
    ),
    "proposer_failure": ClassSpec(
        "Proposer failure: output roots are not being proposed to L1",
        "medium",
        "Restart op-proposer; notify if proposals keep failing (check its L1 balance and RPC)",
        ("op-proposer",),
        _rule(
            "a proposer error line",
            "proposer error lines, or the proposed output height flat",
            Persistence(polls=2, seconds=20),
        ),
        caused_by=("l1_rpc_outage",),
    ),
    "op_geth_cpu_saturation": ClassSpec(
        "op-geth CPU saturation: block production slows under load",
        "low",
        "Scale op-geth CPU up one ladder step; verify the block interval returns to the block time",
        ("op-geth",),
        _rule(
            "cpuUsage out of its range",
            "op-geth at ≥ 80 % of its CPU request",
            # Pinned and late (or a growing pool) for 20 s: a 10 s surge is not a reason to scale.
            Persistence(polls=3, block_times=3, seconds=20, signals=2),
        ),
        caused_by=("txpool_spam",),
    ),
    "op_geth_oom": ClassSpec(
        "op-geth out of memory: the container is OOM-killed and restarts",
        "high",
        "Raise op-geth's memory limit (needs approval) and notify; a restart alone will be killed again",
        ("op-geth",),
        _rule(
            "memoryUsage out of its range, a restart, or op-geth not answering",
            "memory near its limit, restarts or an out-of-memory line",
            Persistence(polls=2, seconds=10, signals=2),
        ),
    ),
    "engine_api_failure": ClassSpec(
        "Engine API failure: op-node cannot drive op-geth over the engine API (8551)",
        "medium",
        "Restart op-geth; check that its engine API (port 8551) is reachable from op-node",
        ("op-geth", "op-node"),
        _rule(
            "an engine API error line",
            "engine API error lines",
            Persistence(polls=2, seconds=10),
        ),
        # A killed or out-of-disk op-geth fails op-node's engine calls too.
        caused_by=("jwt_mismatch", "op_geth_oom", "disk_pressure"),
    ),
    "jwt_mismatch": ClassSpec(
        "JWT mismatch: op-geth rejects op-node's engine API token, op-node crash-loops",
        "critical",
        "Notify operators: a restart will not fix it: fix the shared JWT secret of op-node and op-geth",
        ("op-node", "op-geth"),
        _rule(
            "a 401 / JWT error line",
            "401 / JWT error lines",
            Persistence(polls=2, seconds=4),
        ),
    ),
    "disk_pressure": ClassSpec(
        "Disk pressure: op-geth's data volume is nearly full",
        "critical",
        "Notify; expand the op-geth data volume or prune (needs approval) before geth shuts down",
        ("op-geth",),
        _rule(
            "a low-disk line, or diskUsage ≥ 90 %",
            "low-disk lines or a nearly full data volume",
            Persistence(polls=2, seconds=10),
        ),
    ),
    "peer_loss": ClassSpec(
        "P2P peer loss: the node has no peers",
        "low",
        "Restart the replica op-node; check static peers, bootnodes and the firewall",
        ("op-node",),
        _rule(
            "peerCount 0, or a peer line",
            "no peers, or peer-dial error lines",
            # One poll of peerCount 0 is a blip: restart only after half a minute without peers.
            Persistence(polls=3, block_times=3, seconds=30, signals=2),
        ),
    ),
    "l1_reorg": ClassSpec(
        "L1 reorg: op-node saw the L1 head change and re-derives",
        "low",
        "Observe only: op-node walks back and re-derives by itself; no action unless it repeats deeply",
        ("op-node",),
        _rule(
            "an L1 re-org line",
            "re-org lines or the L1 head going backwards",
            Persistence(polls=1),
        ),
    ),
    "txpool_spam": ClassSpec(
        "Tx pool spam: the pool is at its cap, blocks are full and the base fee rises",
        "low",
        "Observe; rate-limit at the RPC edge; never restart or scale (it would drop the pool, not the spam)",
        ("op-geth",),
        _rule(
            "txPoolCount out of its range, or a pool-full line",
            "a pool near its cap (full blocks and a rising base fee add to it, never alone)",
            Persistence(polls=3, block_times=3, seconds=20, signals=2),
        ),
    ),
}
UNKNOWN_SPEC: Final = ClassSpec(
    "Inconclusive: no incident signature is supported by enough evidence",
    "low",
    "Observe and collect more evidence; no automatic action",
    (),
    _rule("—", "—", Persistence(polls=0)),
)
_BY_NAME: Final[Mapping[str, ClassSpec]] = {str(cls): spec for cls, spec in SPECS.items()}


def spec_of(cause: str) -> ClassSpec:
    """The catalogue entry of a class name; ``unknown`` (or anything else) gets the inconclusive one."""
    return _BY_NAME.get(cause, UNKNOWN_SPEC)


# -------------------------------------------------------------------------------------- log markers


@dataclass(frozen=True, slots=True)
class Marker:
    """A message a real OP Stack component prints for a class, and what it weighs as evidence.

    ``alarm``: a matching line opens a log anomaly in the detector (else it only supports a
    diagnosis already open). ``source``: where the real component logs it (repository: path).
    """

    cls: IncidentClass
    pattern: re.Pattern[str]
    weight: float
    severity: Severity
    source: str
    components: frozenset[str] | None = None  # None: any component
    min_level: int = WARN
    alarm: bool = True

    def matches(self, line: str, *, component: str, level: int | None = None) -> re.Match[str] | None:
        if self.components is not None and component not in self.components:
            return None
        if (line_level(line) if level is None else level) < self.min_level:
            return None
        return self.pattern.search(line)


def _m(
    cls: IncidentClass,
    pattern: str,
    weight: float,
    severity: Severity,
    source: str,
    *,
    components: tuple[str, ...] | None = None,
    min_level: int = WARN,
    alarm: bool = True,
) -> Marker:
    return Marker(
        cls=cls,
        pattern=re.compile(pattern),
        weight=weight,
        severity=severity,
        source=source,
        components=None if components is None else frozenset(components),
        min_level=min_level,
        alarm=alarm,
    )


OP_NODE: Final = ("op-node",)
OP_GETH: Final = ("op-geth",)
BATCHER: Final = ("op-batcher",)
PROPOSER: Final = ("op-proposer",)
_OPT = "optimism"
_GETH = "op-geth"

# Messages as the components print them (logfmt quotes them, terminal pads them: patterns match the
# message text and tolerate either). Sources were read in the optimism monorepo and op-geth.
MARKERS: Final[tuple[Marker, ...]] = (
    # sequencer stall
    _m("sequencer_stall", r"Engine failed temporarily, backing off sequencer", 0.35, "high",
       f"{_OPT}: op-node/rollup/sequencing/sequencer.go", components=OP_NODE),
    _m("sequencer_stall", r"Sequencer temporarily could not seal block", 0.25, "high",
       f"{_OPT}: op-node/rollup/sequencing/sequencer.go", components=OP_NODE),
    _m("sequencer_stall", r"(?i:sequencer failed to start building new block)", 0.3, "high",
       f"{_OPT}: op-node/rollup/sequencing/sequencer.go", components=OP_NODE),
    _m("sequencer_stall", r"sequencer has fallen behind safe head by more than lag", 0.3, "high",
       f"{_OPT}: op-node/rollup/sequencing/sequencer.go", components=OP_NODE),
    _m("sequencer_stall", r"Sequencer encountered reset signal, aborting work", 0.15, "medium",
       f"{_OPT}: op-node/rollup/sequencing/sequencer.go", components=OP_NODE, alarm=False),
    _m("sequencer_stall", r"Sequencer has been stopped", 0.25, "medium",
       f"{_OPT}: op-node/rollup/sequencing/sequencer.go", components=OP_NODE),
    # L1 RPC outage
    _m("l1_rpc_outage", r"L1 temporary error", 0.3, "high",
       f"{_OPT}: op-node/rollup/driver/state.go", components=OP_NODE),
    _m("l1_rpc_outage", r"failed to poll L1 block", 0.25, "high",
       f"{_OPT}: op-service/eth/heads.go"),
    _m("l1_rpc_outage", r"l1 heads subscription error", 0.2, "high",
       f"{_OPT}: op-node/node/node.go", components=OP_NODE),
    # The sequencer cannot adopt a newer L1 origin: it cannot read L1 (op-node's origin selector).
    _m("l1_rpc_outage", r"Next L2 block time is past the sequencer drift", 0.25, "high",
       f"{_OPT}: op-node/rollup/sequencing/origin_selector.go", components=OP_NODE),
    _m("l1_rpc_outage", r"Error finding next L1 Origin", 0.3, "high",
       f"{_OPT}: op-node/rollup/sequencing/sequencer.go", components=OP_NODE),
    _m("l1_rpc_outage", r"failed to fetch runtime config data", 0.2, "medium",
       f"{_OPT}: op-node/node/node.go (reads L1's SystemConfig)", components=OP_NODE),
    # The err, not the message, names the cause: an engine or derivation step that failed on L1 data.
    _m("l1_rpc_outage", r"(?:Engine temporary error|Derivation process (?:temporary )?error|Engine failed "
       r"temporarily).*err=.*(?:L1 block|L1 info|receipts|blobs|beacon|L1 origin|wrong chain L1)",
       0.4, "high",
       f"{_OPT}: op-node/rollup/driver/state.go, op-node/rollup/sequencing/sequencer.go", components=OP_NODE),
    _m("l1_rpc_outage", r"Failed to query L1 tip", 0.1, "medium",
       f"{_OPT}: op-batcher/batcher/driver.go", components=BATCHER, alarm=False),
    # batcher cannot post
    _m("batcher_failure", r"insufficient funds|gas required exceeds allowance \(0\)", 0.4, "high",
       f"{_OPT}: op-service/txmgr/txmgr.go (the L1 node's error)", components=BATCHER),
    _m("batcher_failure", r"unable to publish transaction", 0.25, "medium",
       f"{_OPT}: op-service/txmgr/txmgr.go", components=BATCHER),
    _m("batcher_failure", r"Failed to create a transaction, will retry", 0.2, "medium",
       f"{_OPT}: op-service/txmgr/txmgr.go", components=BATCHER),
    _m("batcher_failure", r"Error publishing tx to l1|Transaction failed to send", 0.15, "medium",
       f"{_OPT}: op-batcher/batcher/driver.go", components=BATCHER),
    _m("batcher_failure", r"Channel timed out", 0.2, "medium",
       f"{_OPT}: op-batcher/batcher/channel.go", components=BATCHER),
    # txmgr bumps the fee and retries: part of normal operation unless it keeps failing.
    _m("batcher_failure", r"transaction is underpriced|replacement transaction underpriced|"
       r"replacement is underpriced|nonce too low", 0.1, "medium",
       f"{_OPT}: op-service/txmgr/txmgr.go", components=BATCHER, alarm=False),
    # proposer failure
    _m("proposer_failure", r"Failed to send proposal transaction", 0.45, "medium",
       f"{_OPT}: op-proposer/proposer/driver.go", components=PROPOSER),
    _m("proposer_failure", r"Error getting output", 0.2, "medium",
       f"{_OPT}: op-proposer/proposer/driver.go", components=PROPOSER),
    _m("proposer_failure", r"Proposer tx successfully published but reverted", 0.3, "medium",
       f"{_OPT}: op-proposer/proposer/driver.go", components=PROPOSER, min_level=INFO),
    _m("proposer_failure", r"insufficient funds|gas required exceeds allowance \(0\)", 0.3, "medium",
       f"{_OPT}: op-service/txmgr/txmgr.go (the L1 node's error)", components=PROPOSER),
    _m("proposer_failure", r"Failed to create a transaction, will retry|unable to publish transaction",
       0.15, "medium", f"{_OPT}: op-service/txmgr/txmgr.go", components=PROPOSER),
    # op-geth CPU saturation
    _m("op_geth_cpu_saturation", r"Database compacting, degraded performance", 0.3, "medium",
       f"{_GETH}: ethdb/pebble/pebble.go", components=OP_GETH),
    # Filling the block ran past its time allowance: starved of CPU (or I/O); a busy chain's symptom.
    _m("op_geth_cpu_saturation", r"Block building is interrupted", 0.2, "low",
       f"{_GETH}: miner/worker.go", components=OP_GETH, alarm=False),
    # op-geth out of memory (Go's runtime and the kubelet's words; the process is killed)
    _m("op_geth_oom", r"fatal error: (?:runtime: )?(?:out of memory|cannot allocate memory)|"
       r"runtime: out of memory|OOMKilled", 0.4, "high",
       "go: runtime/malloc.go; kubelet: container status", components=OP_GETH),
    # After any kill; an OOM kill is the usual one.
    _m("op_geth_oom", r"Unclean shutdown detected", 0.2, "medium",
       f"{_GETH}: internal/shutdowncheck/shutdown_tracker.go", components=OP_GETH),
    # engine API failure
    _m("engine_api_failure", r"Failed to share forkchoice-updated signal", 0.45, "medium",
       f"{_OPT}: op-service/sources/engine_client.go"),
    _m("engine_api_failure", r"(?:Engine temporary error|Derivation process (?:temporary )?error)"
       r".*(?i:forkchoice)", 0.3, "medium", f"{_OPT}: op-node/rollup/driver/state.go", components=OP_NODE),
    _m("engine_api_failure", r"403 Forbidden: invalid host specified|"
       r"cannot continue derivation until Engine has been reset", 0.35, "medium",
       f"{_GETH}: node/rpcstack.go (vhosts); {_OPT}: op-node/rollup/engine", components=OP_NODE),
    _m("engine_api_failure", r"Engine temporary error|Derivation process (?:temporary )?error", 0.1, "medium",
       f"{_OPT}: op-node/rollup/driver/state.go", components=OP_NODE, alarm=False),
    _m("engine_api_failure", r"Beacon client online, but no consensus updates", 0.2, "medium",
       f"{_GETH}: eth/catalyst/api.go", components=OP_GETH),
    _m("engine_api_failure", r"Served engine_forkchoiceUpdated\S*.*err=", 0.2, "medium",
       f"{_GETH}: rpc/handler.go", components=OP_GETH),
    # JWT mismatch (op-geth's node/jwt_handler.go answers 401; op-node quotes it)
    _m("jwt_mismatch", r"401 Unauthorized|signature is invalid|missing token|token is expired|stale token",
       0.6, "critical", f"{_GETH}: node/jwt_handler.go"),
    # op-geth found no secret file and made its own: it will reject op-node's token.
    _m("jwt_mismatch", r"Generated JWT secret", 0.3, "high",
       f"{_GETH}: node/node.go", components=OP_GETH, min_level=INFO, alarm=False),
    _m("jwt_mismatch", r"Error initializing the rollup node", 0.1, "high",
       f"{_OPT}: op-node/node/node.go", components=OP_NODE, alarm=False),
    # disk pressure
    _m("disk_pressure", r"Disk space is running low", 0.6, "critical", f"{_GETH}: cmd/utils/cmd.go"),
    _m("disk_pressure", r"Low disk space\. Gracefully shutting down", 0.7, "critical",
       f"{_GETH}: cmd/utils/cmd.go"),
    _m("disk_pressure", r"no space left on device", 0.6, "critical", "go: syscall ENOSPC, any component"),
    # p2p peer loss
    _m("peer_loss", r"error reconnecting to static peer", 0.3, "low",
       f"{_OPT}: op-node/p2p/discovery.go", components=OP_NODE),
    # A single disconnect that reconnects is churn.
    _m("peer_loss", r"static peer disconnected", 0.1, "low",
       f"{_OPT}: op-node/p2p/discovery.go", components=OP_NODE, alarm=False),
    _m("peer_loss", r"no peers ready to handle block requests", 0.2, "low",
       f"{_OPT}: op-node/p2p/sync.go", components=OP_NODE, min_level=INFO, alarm=False),
    # geth prints this at info level and pads (terminal) or quotes (logfmt) the message.
    _m("peer_loss", r"Looking for peers\"?\s+peercount=0\b", 0.2, "low",
       f"{_GETH}: p2p/server.go", components=OP_GETH, min_level=INFO),
    # L1 reorg
    _m("l1_reorg", r"L1 head signal indicates a possible L1 re-org", 0.6, "low",
       f"{_OPT}: op-node/rollup/status/status.go", components=OP_NODE),
    _m("l1_reorg", r"reset: detected L1 reorg|l2 unsafe head origin is no longer canonical|"
       r"l1 origin was inconsistent with l2 unsafe head origin", 0.45, "low",
       f"{_OPT}: op-node/rollup/derive/l1_traversal.go, check_l1.go", components=OP_NODE, min_level=INFO),
    _m("l1_reorg", r"Walking back L1Block by hash", 0.15, "low",
       f"{_OPT}: op-node/rollup/sync/start.go", components=OP_NODE, min_level=INFO, alarm=False),
    _m("l1_reorg", r"L2 reorg: existing unsafe block does not match", 0.2, "low",
       f"{_OPT}: op-node/rollup/attributes/attributes.go", components=OP_NODE, min_level=INFO,
       alarm=False),
    # tx pool spam
    _m("txpool_spam", r"txpool is full", 0.3, "low",
       f"{_GETH}: core/txpool/legacypool/legacypool.go", components=OP_GETH, min_level=INFO),
)  # fmt: skip

MARKERS_OF: Final[Mapping[IncidentClass, tuple[Marker, ...]]] = {
    cls: tuple(m for m in MARKERS if m.cls == cls) for cls in INCIDENT_CLASSES
}


# A marker this heavy names its class by itself; lighter ones only support a diagnosis already named.
NAMES_BY_ITSELF: Final = 0.2


def classify_line(line: str, *, component: str) -> IncidentClass | None:
    """The class a single line names by itself: its heaviest matching marker's (None: none names one).

    Every marker is tried; this is what one line tells the rca, before any corroboration.
    """
    level = line_level(line)
    best: Marker | None = None
    for marker in MARKERS:
        if marker.weight < NAMES_BY_ITSELF or (best is not None and marker.weight <= best.weight):
            continue
        if marker.matches(line, component=component, level=level):
            best = marker
    return None if best is None else best.cls
