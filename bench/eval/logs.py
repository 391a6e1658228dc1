"""The labelled log-line corpus (``scenarios/logs/``) scored line by line, through the product's own matchers.

Each line is read twice, as the running service reads it: by the detector's ``match_logs`` (does the
line open an anomaly, and of which class) and by the catalogue's ``classify_line`` (which class the
line names as evidence for the rca). A labelled line is right when the class it names is its label;
a healthy or benign line (label null) is right when it names no class and opens no anomaly — any
other outcome on it is a false alarm.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from bench import ROOT
from sentinai.common.incidents import INCIDENT_CLASSES, classify_line
from sentinai.detector.logic import match_logs

LOGS_DIR: Final = ROOT / "scenarios" / "logs" / "corpus"
BENIGN: Final = "benign"


@dataclass(frozen=True, slots=True)
class Line:
    line: str
    component: str
    label: str | None
    origin: str
    source: str


@dataclass(frozen=True, slots=True)
class Verdict:
    entry: Line
    named: str | None  # the class the line names (rca evidence)
    alarms: tuple[str, ...]  # the classes of the anomalies it opens (detector)

    @property
    def right(self) -> bool:
        if self.entry.label is None:
            return self.named is None and not self.alarms
        return self.named == self.entry.label

    @property
    def false_alarm(self) -> bool:
        return self.entry.label is None and (self.named is not None or bool(self.alarms))


def load(root: Path = LOGS_DIR) -> list[Line]:
    out: list[Line] = []
    for path in sorted(root.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text()) or []:
            label = raw.get("label")
            if label is not None and label not in INCIDENT_CLASSES:
                raise ValueError(f"{path.name}: unknown label {label!r}")
            out.append(
                Line(
                    line=str(raw["line"]),
                    component=str(raw["component"]),
                    label=label,
                    origin=str(raw.get("origin", "")),
                    source=str(raw.get("source", "")),
                )
            )
    return out


def judge(entry: Line) -> Verdict:
    findings = match_logs([entry.line], component=entry.component)
    alarms = tuple(sorted(f.metric.removeprefix("log:") for f in findings))
    return Verdict(entry, classify_line(entry.line, component=entry.component), alarms)


def score(lines: list[Line]) -> dict[str, Any]:
    verdicts = [judge(entry) for entry in lines]
    per_class: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[Verdict]] = {}
    for v in verdicts:
        groups.setdefault(v.entry.label or BENIGN, []).append(v)
    for name, group in sorted(groups.items()):
        per_class[name] = {
            "lines": len(group),
            "accuracy": round(sum(v.right for v in group) / len(group), 4),
            "detectorAlarmed": sum(1 for v in group if v.alarms),
            "misses": [
                {
                    "line": v.entry.line,
                    "component": v.entry.component,
                    "named": v.named,
                    "alarms": list(v.alarms),
                }
                for v in group
                if not v.right
            ],
        }
    origins = Counter(v.entry.origin for v in verdicts)
    return {
        "lines": len(verdicts),
        "log_line_accuracy": round(sum(v.right for v in verdicts) / len(verdicts), 4) if verdicts else None,
        "log_line_false_alarms": sum(v.false_alarm for v in verdicts),
        "labelled_accuracy": _rate([v for v in verdicts if v.entry.label is not None]),
        "benign_lines": len(groups.get(BENIGN, [])),
        "origins": dict(origins),
        "byClass": per_class,
    }


def _rate(verdicts: list[Verdict]) -> float | None:
    return round(sum(v.right for v in verdicts) / len(verdicts), 4) if verdicts else None


def table(report: dict[str, Any]) -> str:
    lines = ["", f"{'log lines (scenarios/logs)':<28} {'n':>4} {'acc':>6} {'alarmed':>8}"]
    for name, c in report["byClass"].items():
        lines.append(f"{name:<28} {c['lines']:>4} {c['accuracy']:>6.3f} {c['detectorAlarmed']:>8}")
    lines.append(
        f"{'all':<28} {report['lines']:>4} {report['log_line_accuracy']:>6.3f}   "
        f"false alarms on benign lines: {report['log_line_false_alarms']}"
    )
    for name, c in report["byClass"].items():
        for miss in c["misses"]:
            lines.append(f"  ✗ [{name}] named {miss['named']}, alarms {miss['alarms']}: {miss['line'][:120]}")
    return "\n".join(lines)
