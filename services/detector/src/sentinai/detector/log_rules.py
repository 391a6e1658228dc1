"""Log rules: the catalogue's alarm markers matched on a batch of lines, one finding per incident class."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sentinai.common.events import SEVERITY_RANK
from sentinai.common.incidents import MARKERS, Marker, spec_of
from sentinai.common.loglines import line_level
from sentinai.detector.findings import Finding

MAX_EVIDENCE: Final = 5
_MAX_LINE: Final = 500
# Only markers that may open an anomaly; the others only support a diagnosis already open.
ALARMS: Final[tuple[Marker, ...]] = tuple(m for m in MARKERS if m.alarm)
_ANY_ALARM = re.compile("|".join(f"(?:{m.pattern.pattern})" for m in ALARMS))


@dataclass(slots=True)
class _Hit:
    marker: Marker
    matched: str
    count: int = 0
    evidence: list[str] = field(default_factory=list)


def match_logs(lines: Sequence[str], *, component: str) -> list[Finding]:
    """One finding per incident class whose markers matched, quoting up to five matching lines.

    Every marker is tried on every line: a line that carries two classes' messages counts for both.
    """
    hits: dict[str, _Hit] = {}
    for line in lines:
        if _ANY_ALARM.search(line) is None:
            continue
        level = line_level(line)
        counted: set[str] = set()
        for marker in ALARMS:
            match = marker.matches(line, component=component, level=level)
            if match is None:
                continue
            hit = hits.get(marker.cls)
            if hit is None:
                hit = hits[marker.cls] = _Hit(marker, match.group(0))
            elif SEVERITY_RANK[marker.severity] > SEVERITY_RANK[hit.marker.severity]:
                hit.marker, hit.matched = marker, match.group(0)
            if marker.cls in counted:
                continue
            counted.add(marker.cls)
            hit.count += 1
            if len(hit.evidence) < MAX_EVIDENCE:
                hit.evidence.append(line[:_MAX_LINE])
    findings = []
    for cls, hit in hits.items():
        title = spec_of(cls).title.split(":", 1)[0]
        findings.append(
            Finding(
                metric=f"log:{cls}",
                value=float(hit.count),
                z_score=0.0,
                direction="up",
                severity=hit.marker.severity,
                description=(
                    f'{title}: {component} logged "{hit.matched}" '
                    f"({hit.count} line{'s' if hit.count != 1 else ''})"
                ),
                rule="log",
                summary=title,
                evidence=tuple(hit.evidence),
            )
        )
    return findings
