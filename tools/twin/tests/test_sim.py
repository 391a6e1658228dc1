"""The simulation core: determinism, a healthy baseline, every incident's symptoms, and scaling up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from random import Random

import pytest

from sentinai.common.quantity import GI
from sentinai.twin import incidents, sim
from sentinai.twin.model import GAS_LIMIT, TXPOOL_PENDING_CAP, ChainConfig, ChainState, LogLine, seed_for


class Run:
    """A chain plus its generator and every log line printed so far."""

    def __init__(self, seed: int = 42, chain: str = "twin") -> None:
        self.rng = Random(seed_for(seed, chain))
        self.state = sim.initial_state(ChainConfig(chain=chain, seed=seed), self.rng)
        self.lines: list[LogLine] = []

    def step(self, ticks: int) -> list[LogLine]:
        printed: list[LogLine] = []
        for _ in range(ticks):
            self.state, lines = sim.step(self.state, self.rng)
            printed.extend(lines)
        self.lines.extend(printed)
        return printed

    def inject(self, kind: str, **params: float) -> None:
        self.state = sim.inject(self.state, incidents.make(kind, params, tick=self.state.tick))

    def clear(self) -> None:
        self.state, _ = sim.clear(self.state)


def printed(lines: list[LogLine], text: str) -> bool:
    return any(text in line.text for line in lines)


def test_same_seed_same_run_line_for_line() -> None:
    runs = [Run(seed=42), Run(seed=42)]
    for run in runs:
        run.step(50)
        run.inject("cpu_spike")
        run.step(50)
        run.clear()
        run.step(20)
    assert runs[0].state == runs[1].state
    assert runs[0].lines == runs[1].lines
    other = Run(seed=43)
    other.step(50)
    assert other.lines != runs[0].lines[: len(other.lines)]


def test_healthy_chain_looks_like_a_healthy_op_chain() -> None:
    run = Run()
    start = run.state.head.number
    lines = run.step(200)
    s = run.state
    geth = s.pods["op-geth"]
    assert s.head.number == start + 200  # one block per block time
    assert 0.3 <= geth.cpu_cores / geth.cpu_request_cores <= 0.65
    assert 0 < s.head.number - s.safe_l2 <= 60
    assert s.finalized_l2 <= s.safe_l2 <= s.head.number
    assert s.pending < 200
    assert s.head.gas_used / GAS_LIMIT < 0.4
    assert printed(lines, "Imported new potential chain segment")
    assert printed(lines, 'msg="Sequencer inserted block"')
    assert printed(lines, 'msg="Transaction confirmed"')
    assert printed(lines, 'msg="Proposer tx successfully published"')
    assert not any(" lvl=error " in line.text or line.text.startswith("ERROR") for line in lines)


Check = Callable[[ChainState, ChainState], bool]


@dataclass(frozen=True)
class Case:
    kind: str
    log: str
    symptom: Check  # (at injection, after the incident ran)
    recovered: Check  # (when cleared, after recovery)
    ticks: int = 40


CASES = [
    Case(
        "cpu_spike",
        "Database compacting, degraded performance",
        lambda _a, b: b.saturation > 1 and b.pending > 100 and b.head.gas_used / GAS_LIMIT > 0.9,
        lambda a, b: b.saturation < 1 and b.pending < a.pending,
    ),
    Case(
        "txpool_flood",
        "txpool is full",
        lambda a, b: (
            b.pending > TXPOOL_PENDING_CAP - 300
            and b.head.gas_used / GAS_LIMIT > 0.9
            and b.head.base_fee > a.head.base_fee
        ),
        lambda _a, b: b.pending < 200,
    ),
    Case(
        "sequencer_stall",
        "Engine failed temporarily, backing off sequencer",
        lambda a, b: b.head.number == a.head.number and b.pending > a.pending + 500,
        lambda a, b: b.head.number > a.head.number,
    ),
    Case(
        "l1_rpc_outage",
        "L1 temporary error",
        lambda a, b: b.l1_head == a.l1_head and b.safe_l2 == a.safe_l2 and b.head.number > a.head.number,
        lambda a, b: b.l1_head > a.l1_head and b.safe_l2 > a.safe_l2,
    ),
    Case(
        "batcher_failure",
        "insufficient funds",
        # The batcher key is empty: its L1 balance is what the collector reads as ≈ 0 ETH.
        lambda a, b: (
            b.safe_l2 <= a.batched_to and b.head.number - b.safe_l2 > 60 and b.batcher_balance_wei < 10**15
        ),
        lambda _a, b: b.head.number - b.safe_l2 <= 60 and b.batcher_balance_wei > 10**18,
        ticks=70,
    ),
    Case(
        "op_geth_oom",
        "Engine temporary error",
        lambda _a, b: (
            b.pods["op-geth"].restart_count >= 1
            and b.pods["op-geth"].last_terminated is not None
            and b.pods["op-geth"].last_terminated.reason == "OOMKilled"
        ),
        lambda _a, b: b.pods["op-geth"].ready and b.pods["op-geth"].memory_bytes < 5 * GI,
    ),
    Case(
        "peer_loss",
        "error reconnecting to static peer",
        lambda _a, b: b.node_peers == 0 and b.geth_peers == 0,
        lambda _a, b: b.node_peers > 0 and b.geth_peers > 0,
    ),
    Case(
        "disk_pressure",
        "Disk space is running low. Geth will shutdown if disk space runs below critical level.",
        lambda _a, b: b.disk_free_bytes < 2 * GI,
        lambda _a, b: b.disk_free_bytes > 100 * GI,
    ),
    Case(
        "engine_api_failure",
        "Failed to share forkchoice-updated signal",
        lambda a, b: b.head.number == a.head.number,
        lambda a, b: b.head.number > a.head.number,
    ),
    Case(
        "jwt_mismatch",
        "401 Unauthorized: signature is invalid",
        lambda a, b: b.pods["op-node"].restart_count >= 3 and b.head.number == a.head.number,
        lambda a, b: b.pods["op-node"].ready and b.head.number > a.head.number,
    ),
    Case(
        "proposer_failure",
        "Failed to send proposal transaction",
        lambda a, b: b.proposed_l2 == a.proposed_l2,
        lambda a, b: b.proposed_l2 > a.proposed_l2,
        ticks=65,
    ),
    Case(
        "l1_reorg",
        "L1 head signal indicates a possible L1 re-org",
        lambda a, b: b.l1_hash(a.l1_head) != a.l1_hash(a.l1_head),
        lambda a, b: b.l1_reorgs == a.l1_reorgs,
    ),
]


def test_every_incident_kind_has_a_case() -> None:
    assert {c.kind for c in CASES} == set(incidents.KINDS)


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_incident_shows_its_symptoms_and_clears(case: Case) -> None:
    run = Run()
    run.step(30)
    at_injection = run.state
    run.inject(case.kind)
    during = run.step(case.ticks)
    assert case.symptom(at_injection, run.state), case.kind
    assert printed(during, case.log)

    at_clear = run.state
    run.clear()
    run.step(10)  # restarting pods come back, the pool starts draining
    after = run.step(60)
    assert case.recovered(at_clear, run.state), case.kind
    assert not printed(after, case.log)


def test_scaling_op_geth_cpu_relieves_saturation() -> None:
    run = Run()
    run.inject("cpu_spike", factor=4.0)
    run.step(30)
    saturated = run.state
    assert saturated.saturation > 1
    geth = saturated.pods["op-geth"]
    run.state = sim.roll(
        run.state,
        "op-geth",
        resources=replace(geth.resources, cpu_request_m=2500),
        replicas=1,
        template_changed=True,
    )
    during_rollout = run.step(2)
    assert not run.state.pods["op-geth"].ready
    assert not printed(during_rollout, "Imported new potential chain segment")  # op-geth is down
    run.step(40)
    relieved = run.state
    assert relieved.saturation < 1
    assert relieved.pending < saturated.pending
    assert relieved.pods["op-geth"].ready and relieved.pods["op-geth"].incarnation == geth.incarnation + 1
    # The sequencer catches up on the blocks it could not build while saturated and restarting.
    assert relieved.now - relieved.head.timestamp < saturated.now - saturated.head.timestamp


def test_traffic_multiplier_drives_cpu() -> None:
    run = Run()
    run.step(10)
    calm = run.state.pods["op-geth"].cpu_cores
    run.state = sim.set_traffic(run.state, 1.5)
    run.step(10)
    assert run.state.pods["op-geth"].cpu_cores > calm * 1.2


def test_unknown_incident_and_bad_params_are_refused() -> None:
    with pytest.raises(incidents.UnknownIncidentError, match="cpu_spike"):
        incidents.make("meteor", None, tick=0)
    with pytest.raises(incidents.InvalidParamsError):
        incidents.make("cpu_spike", {"factor": "x"}, tick=0)
    with pytest.raises(incidents.InvalidParamsError):
        incidents.make("cpu_spike", {"nope": 1}, tick=0)


def test_restart_cures_faults_that_live_in_the_process_only() -> None:
    state = sim.initial_state(ChainConfig(chain="cure", seed=3), Random(3))
    state = sim.inject(state, incidents.make("sequencer_stall", None, tick=state.tick))
    state = sim.inject(state, incidents.make("l1_rpc_outage", None, tick=state.tick))
    restarted = sim.restart_pod(state, "op-node")
    assert [i.kind for i in restarted.incidents] == ["l1_rpc_outage"]
    sticky = sim.inject(state, incidents.make("sequencer_stall", {"persist": 1}, tick=state.tick))
    assert "sequencer_stall" in [i.kind for i in sim.restart_pod(sticky, "op-node").incidents]
