"""``make eval``: every scenario replayed through detector → rca → planner as pure functions, then scored.

No bus, no servers: the twin's simulation is stepped in-process and read the way the collector reads
it (``telemetry``), the detector's, rca's and planner's pure cores decide (``replay``), and
the decisions are scored against each scenario's ground truth (``score``). Prints a table and
writes ``.reports/eval.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.eval import logs as eval_logs
from bench.eval.replay import PlanStage, RcaStage, replay
from bench.eval.scenarios import SCENARIOS_DIR, load_all
from bench.eval.score import Row, by_class, score_scenario, summarise, verdicts
from bench.eval.telemetry import generate
from sentinai.common.policy import load_policy
from sentinai.detector.settings import DetectorSettings
from sentinai.planner.settings import PlannerSettings
from sentinai.rca.settings import RcaSettings


@dataclass(frozen=True, slots=True)
class Settings:
    """Each service's settings as deployed (environment included), the block time set per scenario."""

    detector: DetectorSettings
    rca: RcaSettings
    planner: PlannerSettings

    def for_block_time(self, block_time_s: float) -> Settings:
        update = {"block_time_s": block_time_s}
        return Settings(
            detector=self.detector.model_copy(update=update),
            rca=self.rca.model_copy(update=update),
            planner=self.planner.model_copy(update=update),
        )


def run_all(root: Path, *, only: set[str], settings: Settings) -> tuple[list[Row], list[float]]:
    """Every scenario (or those in ``only``) replayed and scored; also the diagnosis latencies."""
    policy = load_policy()
    rows: list[Row] = []
    latencies: list[float] = []
    for scenario_id, (folder, scenario) in sorted(load_all(root).items(), key=lambda kv: (kv[1][0], kv[0])):
        if only and scenario_id not in only:
            continue
        these = settings.for_block_time(float(scenario.block_time_s))
        rca_stage = RcaStage.create(these.rca)
        run = replay(
            generate(scenario),
            detector_settings=these.detector,
            rca_stage=rca_stage,
            plan_stage=PlanStage(policy=policy, settings=these.planner),
        )
        rows.append(score_scenario(scenario, folder, run, policy=policy))
        latencies += rca_stage.latencies_ms
    return rows, latencies


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


SUMMARY_ORDER = (
    "scenarios",
    "detection_rate",
    "median_time_to_detect_s",
    "median_time_to_diagnose_s",
    "rca_top1_accuracy",
    "rca_top3_accuracy",
    "correct_action_rate",
    "unsafe_actions",
    "no_fault_quiet_rate",
    "no_fault_anomalies_per_hour",
    "no_fault_gauge_anomalies_per_hour",
    "log_line_accuracy",
    "log_line_false_alarms",
)
CLASS_COLUMNS = (
    ("n", "scenarios"),
    ("detect", "detection_rate"),
    ("ttd_s", "median_time_to_detect_s"),
    ("top1", "rca_top1_accuracy"),
    ("top3", "rca_top3_accuracy"),
    ("action", "correct_action_rate"),
    ("unsafe", "unsafe_actions"),
    ("quiet", "no_fault_quiet_rate"),
)


def _scenario_line(row: Row) -> str:
    ok = row.top1_ok if row.fault else row.quiet
    rca = f"{row.rca_class or '—'}{'' if ok is None else (' ✓' if ok else ' ✗')}"
    conf = f"{row.rca_confidence:.2f}" if row.rca_confidence is not None else "—"
    proposals = "; ".join(dict.fromkeys(row.actions)) or "none"
    ttd = _fmt(row.time_to_detect_s)
    line = f"{row.id:<36} {ttd:>6} {rca:<24} {conf:>4} {_fmt(row.action_ok):>3}  {proposals}"
    return line + "".join(f"\n{'':>39}UNSAFE: {u}" for u in row.unsafe)


def table(summary: dict[str, Any], classes: dict[str, dict[str, Any]], rows: list[Row]) -> str:
    met = verdicts(summary)
    lines = ["", f"{'metric':<34} {'value':>7}"]
    for name in SUMMARY_ORDER:
        mark = "" if name not in met else ("  met" if met[name] else "  MISSED")
        lines.append(f"{name:<34} {_fmt(summary[name]):>7}{mark}")
    lines += ["", f"{'class':<24}" + "".join(f" {title:>6}" for title, _ in CLASS_COLUMNS)]
    for folder, c in classes.items():
        lines.append(f"{folder:<24}" + "".join(f" {_fmt(c[key]):>6}" for _, key in CLASS_COLUMNS))
    lines += [
        "",
        f"{'scenario':<36} {'ttd_s':>6} {'first RCA (in window)':<24} {'conf':>4} {'ok':>3}  proposals",
    ]
    lines += [_scenario_line(row) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__)
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS_DIR)
    parser.add_argument("--only", nargs="*", help="scenario ids to run (default: all)")
    parser.add_argument("--logs", type=Path, default=eval_logs.LOGS_DIR, help="the labelled log-line corpus")
    parser.add_argument("--out", type=Path, default=ROOT / ".reports" / "eval.json")
    args = parser.parse_args()
    settings = Settings(detector=DetectorSettings(), rca=RcaSettings(), planner=PlannerSettings())
    started = time.perf_counter()
    rows, latencies = run_all(args.scenarios, only=set(args.only or ()), settings=settings)
    elapsed = time.perf_counter() - started
    summary = summarise(rows)
    if latencies:
        summary["rca_rules_latency_ms_p50"] = round(statistics.median(latencies), 3)
        summary["rca_rules_latency_ms_p95"] = round(statistics.quantiles(latencies, n=20)[-1], 3)
    classes = by_class(rows)
    logs = eval_logs.score(eval_logs.load(args.logs))
    summary["log_line_accuracy"] = logs["log_line_accuracy"]
    summary["log_line_false_alarms"] = logs["log_line_false_alarms"]
    report = {
        "summary": summary,
        "logLines": logs,
        "targets": verdicts(summary),
        "byClass": classes,
        "scenarios": [r.as_json() for r in rows],
        "runtimeS": round(elapsed, 2),
        "settings": {
            "detector": settings.detector.model_dump(
                mode="json", include={"mode", "window", "z_threshold", "min_points", "streaming_cooldown_s"}
            ),
            "rca": settings.rca.model_dump(
                mode="json",
                include={"metric_window", "quiet_s", "revise_delta", "revise_every_s", "rediagnose_s"},
            ),
            "planner": settings.planner.model_dump(mode="json", include={"min_rca_confidence"}),
        },
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(summary, classes, rows))
    print(eval_logs.table(logs))
    print(f"\n{len(rows)} scenarios in {elapsed:.1f}s; report: {args.out}")
