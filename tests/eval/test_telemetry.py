"""The telemetry generator: deterministic, and it shows what the scenario does to the chain."""

from __future__ import annotations

from typing import Any

from bench.eval.scenarios import Scenario
from bench.eval.telemetry import Poll, generate
from sentinai.common import catalog


def _scenario(timeline: list[dict[str, Any]], *, seed: int = 5, **extra: Any) -> Scenario:
    return Scenario.model_validate(
        {
            "id": "probe",
            "description": "a probe",
            "seed": seed,
            "durationS": 120,
            "warmupS": 20,
            "timeline": timeline,
            "truth": {"fault": False, "rootCause": None, "action": None, "tier": None},
            **extra,
        }
    )


def _dump(polls: list[Poll]) -> list[Any]:
    return [
        (p.at, [s.model_dump() for s in p.samples], [b.model_dump() for b in p.logs], p.warmup) for p in polls
    ]


def _metric(polls: list[Poll], component: str, source: str, metric: str) -> list[float | None]:
    return [
        next(
            (s.metrics.get(metric) for s in p.samples if s.component == component and s.source == source),
            None,
        )
        for p in polls
        if not p.warmup
    ]


def test_same_seed_gives_identical_events() -> None:
    scenario = _scenario(
        [{"atS": 30, "inject": "cpu_spike"}],
        noise=[{"component": "op-geth", "metric": "cpuUsage", "sigma": 4}],
    )
    first, second = list(generate(scenario)), list(generate(scenario))
    assert _dump(first) == _dump(second)
    assert len({s.event_id for p in first for s in p.samples}) == sum(len(p.samples) for p in first)


def test_another_seed_gives_another_chain() -> None:
    assert _dump(list(generate(_scenario([], seed=1)))) != _dump(list(generate(_scenario([], seed=2))))


def test_polls_every_block_time_with_warmup_first() -> None:
    polls = list(generate(_scenario([])))
    assert [p.at for p in polls] == [float(t) for t in range(-18, 122, 2)]
    assert [p.warmup for p in polls] == [p.at <= 0 for p in polls]
    # Eight targets per poll, as the collector polls the twin: four RPC endpoints, four pods.
    assert {len(p.samples) for p in polls} == {8}
    assert {(s.component, s.source) for s in polls[0].samples} == {
        (c, src) for c in ("op-geth", "op-node", "op-batcher", "op-proposer") for src in ("rpc", "k8s")
    }


def test_cpu_spike_saturates_op_geth() -> None:
    cpu = _metric(
        list(generate(_scenario([{"atS": 60, "inject": "cpu_spike", "params": {"factor": 4}}]))),
        "op-geth",
        "k8s",
        catalog.CPU_USAGE,
    )
    before, after = cpu[:25], cpu[35:]
    assert max(v for v in before if v is not None) < 70
    assert min(v for v in after if v is not None) > 100


def test_glitch_overrides_one_poll_and_noise_only_its_window() -> None:
    scenario = _scenario(
        [{"atS": 41, "glitch": {"component": "op-geth", "metric": "txPoolCount", "value": 999}}],
        noise=[{"component": "op-node", "metric": "cpuUsage", "sigma": 5, "fromS": 100}],
    )
    polls = [p for p in generate(scenario) if not p.warmup]
    pool = _metric(polls, "op-geth", "rpc", catalog.TX_POOL_COUNT)
    assert [p.at for p, v in zip(polls, pool, strict=True) if v == 999] == [42.0]
    clean = _metric(list(generate(_scenario([]))), "op-node", "k8s", catalog.CPU_USAGE)
    noisy = _metric(polls, "op-node", "k8s", catalog.CPU_USAGE)
    changed = [p.at for p, a, b in zip(polls, clean, noisy, strict=True) if a != b]
    assert changed and min(changed) >= 100


def test_distractor_line_is_shipped_in_the_component_format() -> None:
    scenario = _scenario(
        [
            {
                "atS": 20,
                "log": {
                    "component": "op-node",
                    "level": "error",
                    "msg": "failed to serve p2p sync request",
                    "fields": {"err": "stream reset"},
                },
            }
        ]
    )
    lines = [line for p in generate(scenario) for b in p.logs if b.component == "op-node" for line in b.lines]
    shipped = [line for line in lines if "p2p sync" in line]
    assert len(shipped) == 1
    assert (
        shipped[0].startswith("t=2026-11-26T")
        and 'lvl=error msg="failed to serve p2p sync request" err="stream reset"' in shipped[0]
    )


def test_rollout_restart_replaces_the_pod_and_it_heals() -> None:
    polls = [p for p in generate(_scenario([{"atS": 30, "rollout": "op-batcher"}])) if not p.warmup]
    ready = _metric(polls, "op-batcher", "k8s", catalog.POD_READY)
    assert 0.0 in ready and ready[-1] == 1.0
    rpc_down = [
        s
        for p in polls
        for s in p.samples
        if s.component == "op-batcher" and s.source == "rpc" and not s.target_up
    ]
    assert rpc_down and "HTTP 503" in (rpc_down[0].error or "")
    batcher_lines = [line for p in polls for b in p.logs if b.component == "op-batcher" for line in b.lines]
    assert len([line for line in batcher_lines if 'msg="Starting batcher"' in line]) == 1  # the new container
