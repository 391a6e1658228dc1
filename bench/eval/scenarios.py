"""The incident scenarios as data: the schema of ``scenarios/**/<id>.yaml`` and its loader."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from bench import ROOT
from sentinai.common.actions import ActionKind
from sentinai.common.events import Component
from sentinai.common.incidents import IncidentClass
from sentinai.common.policy import Tier
from sentinai.twin import incidents
from sentinai.twin.incidents import TWIN_KIND_TO_CLASS

SCENARIOS_DIR = ROOT / "scenarios"
NO_FAULT_DIR = "no_fault"
LogLevel = Literal["debug", "info", "warn", "error"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LogLine(_Model):
    """A line a component prints: verbatim (``line``) or built in its own format from ``msg``."""

    component: Component
    line: str | None = None
    level: LogLevel = "error"
    msg: str | None = None
    fields: dict[str, str | int | float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.line is None) == (self.msg is None):
            raise ValueError("a log step needs exactly one of 'line' or 'msg'")
        return self


class Glitch(_Model):
    """A metric of one component reads ``value`` for ``forS`` seconds (one poll when 0)."""

    component: Component
    metric: str
    value: float
    for_s: float = Field(default=0.0, ge=0)


class Noise(_Model):
    """Gaussian noise of ``sigma`` added to one metric of one component from ``fromS`` to ``toS``."""

    component: Component
    metric: str
    sigma: float = Field(gt=0)
    from_s: float = Field(default=0.0, ge=0)
    to_s: float | None = None


class Step(_Model):
    """One timeline event at ``atS`` seconds after the scenario starts; exactly one action."""

    at_s: float = Field(ge=0)
    inject: str | None = None
    params: dict[str, float] = Field(default_factory=dict)
    clear: str | None = None
    traffic: float | None = Field(default=None, ge=0, le=1000)
    log: LogLine | None = None
    glitch: Glitch | None = None
    rollout: Component | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        actions = [self.inject, self.clear, self.traffic, self.log, self.glitch, self.rollout]
        if sum(a is not None for a in actions) != 1:
            raise ValueError("a step has exactly one of inject, clear, traffic, log, glitch, rollout")
        if self.params and self.inject is None:
            raise ValueError("params belong to an inject step")
        if self.inject is not None:
            # The twin's own constructor checks kind and parameters, so the file fails as the API would.
            incidents.make(self.inject, self.params, tick=0)
        if self.clear is not None and self.clear not in incidents.KINDS:
            raise ValueError(f"unknown incident kind to clear: {self.clear!r}")
        return self


class TruthAction(_Model):
    kind: ActionKind
    component: Component | None = None


class Truth(_Model):
    """What a correct operator concludes: fault or not, its class, the components, the right action."""

    fault: bool
    root_cause: IncidentClass | None
    components: tuple[Component, ...] = ()
    action: TruthAction | None
    tier: Tier | None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.fault and self.root_cause is None:
            raise ValueError("a fault needs a rootCause")
        if self.fault and not self.components:
            raise ValueError("a fault names its affected components")
        if (self.action is None) != (self.tier is None):
            raise ValueError("tier is given exactly when an action is")
        if not self.fault and self.action is not None:
            raise ValueError("a no-fault scenario has no right action")
        return self


class Scenario(_Model):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = Field(min_length=1)
    seed: int = Field(ge=0)
    block_time_s: int = Field(default=2, ge=1, le=12)
    duration_s: float = Field(gt=0, le=3600)
    # Healthy history polled before t=0 to fill the detector's windows, as a running detector has.
    warmup_s: float = Field(default=120.0, ge=0, le=3600)
    noise: tuple[Noise, ...] = ()
    timeline: tuple[Step, ...] = ()
    truth: Truth

    @model_validator(mode="after")
    def _timeline(self) -> Self:
        for step in self.timeline:
            if step.at_s >= self.duration_s:
                raise ValueError(f"step at {step.at_s:g}s is past durationS {self.duration_s:g}s")
        if self.truth.fault:
            self.fault_window()
        return self

    def fault_window(self) -> tuple[float, float]:
        """When the truth's incident is active: its first inject to its clear (or the end)."""
        start = next(
            (
                s.at_s
                for s in self.timeline
                if s.inject is not None and TWIN_KIND_TO_CLASS.get(s.inject) == self.truth.root_cause
            ),
            None,
        )
        if start is None:
            raise ValueError(f"no inject step produces the truth's rootCause {self.truth.root_cause}")
        kinds = {k for k, c in TWIN_KIND_TO_CLASS.items() if c == self.truth.root_cause}
        end = next(
            (s.at_s for s in self.timeline if s.clear in kinds and s.at_s > start),
            self.duration_s,
        )
        return start, end


class ScenarioError(ValueError):
    pass


def load_scenario(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text())
        scenario = Scenario.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if scenario.id != path.stem:
        raise ScenarioError(f"{path}: id {scenario.id!r} differs from the file name")
    return scenario


def scenario_class(path: Path, root: Path = SCENARIOS_DIR) -> str:
    """The folder a scenario lives in: its incident class, or ``no_fault``."""
    return path.relative_to(root).parts[0]


def load_all(root: Path = SCENARIOS_DIR) -> dict[str, tuple[str, Scenario]]:
    """Every scenario under ``root`` by id, with its folder; ids are unique across folders."""
    found: dict[str, tuple[str, Scenario]] = {}
    for path in sorted(root.glob("*/*.yaml")):
        scenario = load_scenario(path)
        if scenario.id in found:
            raise ScenarioError(f"{path}: duplicate scenario id {scenario.id!r}")
        folder = scenario_class(path, root)
        _check_folder(folder, scenario, path)
        found[scenario.id] = (folder, scenario)
    return found


def _check_folder(folder: str, scenario: Scenario, path: Path) -> None:
    truth = scenario.truth
    if folder == NO_FAULT_DIR:
        if truth.fault:
            raise ScenarioError(f"{path}: a scenario under {NO_FAULT_DIR}/ must have fault: false")
    elif folder != truth.root_cause:
        raise ScenarioError(f"{path}: folder {folder!r} differs from rootCause {truth.root_cause!r}")


def counts_by_folder(scenarios: Mapping[str, tuple[str, Scenario]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for folder, _scenario in scenarios.values():
        counts[folder] = counts.get(folder, 0) + 1
    return counts
