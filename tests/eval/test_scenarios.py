"""The scenario suite: every file loads and validates, every incident class is covered, bad files fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bench.eval.scenarios import NO_FAULT_DIR, Scenario, ScenarioError, counts_by_folder, load_all
from sentinai.common.incidents import INCIDENT_CLASSES


def test_every_scenario_file_loads_and_validates() -> None:
    scenarios = load_all()
    assert len(scenarios) >= 50
    for folder, scenario in scenarios.values():
        if scenario.truth.fault:
            start, end = scenario.fault_window()
            assert 0 <= start < end <= scenario.duration_s, scenario.id
        else:
            assert folder == NO_FAULT_DIR


def test_every_incident_class_has_three_variants_and_there_are_five_controls() -> None:
    counts = counts_by_folder(load_all())
    assert {c: counts.get(c, 0) for c in INCIDENT_CLASSES if counts.get(c, 0) < 3} == {}
    assert counts[NO_FAULT_DIR] >= 5
    assert set(counts) == {*INCIDENT_CLASSES, NO_FAULT_DIR}


def test_faults_come_with_distractors_and_noise() -> None:
    scenarios = [s for _, s in load_all().values() if s.truth.fault]
    with_distractor = [s for s in scenarios if any(step.log or step.glitch for step in s.timeline) or s.noise]
    assert len(with_distractor) >= 12


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "probe",
        "description": "a probe",
        "seed": 1,
        "durationS": 300,
        "timeline": [{"atS": 60, "inject": "cpu_spike", "params": {"factor": 3}}],
        "truth": {
            "fault": True,
            "rootCause": "op_geth_cpu_saturation",
            "components": ["op-geth"],
            "action": {"kind": "scale_cpu", "component": "op-geth"},
            "tier": "low",
        },
    }
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"timeline": [{"atS": 60, "inject": "cpu_spike", "clear": "cpu_spike"}]}, id="two-actions"
        ),
        pytest.param({"timeline": [{"atS": 60, "inject": "meteor_strike"}]}, id="unknown-incident"),
        pytest.param(
            {"timeline": [{"atS": 60, "inject": "cpu_spike", "params": {"speed": 2}}]}, id="bad-param"
        ),
        pytest.param({"timeline": [{"atS": 900, "inject": "cpu_spike"}]}, id="step-after-end"),
        pytest.param({"timeline": [{"atS": 60, "inject": "peer_loss"}]}, id="truth-never-injected"),
        pytest.param(
            {"truth": {"fault": True, "rootCause": None, "action": None, "tier": None}}, id="fault-no-cause"
        ),
        pytest.param(
            {"truth": {"fault": False, "rootCause": None, "action": {"kind": "notify"}, "tier": "low"}},
            id="no-fault-with-action",
        ),
        pytest.param({"timeline": [{"atS": 10, "log": {"component": "op-node"}}]}, id="log-without-text"),
        pytest.param({"surprise": 1}, id="unknown-field"),
    ],
)
def test_malformed_scenarios_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Scenario.model_validate(_doc(**overrides))


def test_a_file_must_live_in_its_class_folder(tmp_path: Path) -> None:
    folder = tmp_path / "peer_loss"
    folder.mkdir()
    (folder / "probe.yaml").write_text(yaml.safe_dump(_doc()))
    with pytest.raises(ScenarioError, match="differs from rootCause"):
        load_all(tmp_path)


def test_the_id_is_the_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "op_geth_cpu_saturation"
    folder.mkdir()
    (folder / "other.yaml").write_text(yaml.safe_dump(_doc()))
    with pytest.raises(ScenarioError, match="differs from the file name"):
        load_all(tmp_path)
