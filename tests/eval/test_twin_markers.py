"""The twin plays the outside world with its own strings: each incident it injects prints the real
messages the catalogue's markers name, read the way the collector reads the twin's pod logs."""

from __future__ import annotations

import pytest

from bench.eval.scenarios import Scenario
from bench.eval.telemetry import generate
from sentinai.common.incidents import MARKERS_OF
from sentinai.twin.incidents import TWIN_KIND_TO_CLASS

# The classes whose twin incidents print nothing of their own: an OOM kill (the process just dies)
# and a CPU spike (op-geth only slows down; its compaction line is rare).
SILENT = {"op_geth_oom", "op_geth_cpu_saturation"}


def _scenario(kind: str) -> Scenario:
    return Scenario.model_validate(
        {
            "id": f"probe_{kind}",
            "description": f"{kind} probe",
            "seed": 11,
            "durationS": 240,
            "timeline": [{"atS": 30, "inject": kind}],
            "truth": {
                "fault": True,
                "rootCause": TWIN_KIND_TO_CLASS[kind],
                "components": ["op-node"],
                "action": None,
                "tier": None,
            },
        }
    )


@pytest.mark.parametrize("kind", sorted(k for k, c in TWIN_KIND_TO_CLASS.items() if c not in SILENT))
def test_each_twin_incident_prints_a_marker_of_its_class(kind: str) -> None:
    cls = TWIN_KIND_TO_CLASS[kind]
    lines = [
        (batch.component, line)
        for poll in generate(_scenario(kind))
        if not poll.warmup
        for batch in poll.logs
        for line in batch.lines
    ]
    printed = {
        m.pattern.pattern for m in MARKERS_OF[cls] for c, line in lines if m.matches(line, component=c)
    }
    assert printed, f"the twin's {kind} printed no marker of {cls}"
