"""The risk policy: which tier an action falls in, what that tier demands, what is never allowed.

Pure and shared: the planner classifies with it before proposing, and the executor classifies the
same action again before acting, so a message forged onto ``action.approved`` cannot skip a tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sentinai.common.actions import Action, ActionKind
from sentinai.common.incidents import RootCauseClass

Tier = Literal["low", "medium", "high", "critical"]
TIER_RANK: Final[dict[Tier, int]] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

# Float arithmetic leaves crumbs (0.1 * 3 is 0.30000000000000004): vCPU amounts closer than this are
# the same amount.
EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Ladder:
    """The vCPU steps a component may be given, lowest first; amounts are compared within ``EPS``.

    Built from any order and repeats (``Ladder((4, 1, 2, 2))`` has steps 1, 2, 4); empty or a step
    that is not positive is a ``ValueError``.
    """

    steps: tuple[float, ...]

    def __post_init__(self) -> None:
        steps = tuple(sorted({float(step) for step in self.steps}))
        if not steps or steps[0] <= 0:
            raise ValueError(f"the vCPU ladder needs at least one positive step, not {self.steps!r}")
        object.__setattr__(self, "steps", steps)

    @property
    def floor(self) -> float:
        return self.steps[0]

    @property
    def top(self) -> float:
        return self.steps[-1]

    def fit(self, cores: float, *, tolerance: float = EPS) -> float:
        """The smallest step that holds ``cores`` (within ``tolerance``); the top if none does."""
        return next((step for step in self.steps if step >= cores - tolerance), self.top)

    def above(self, vcpu: float) -> float | None:
        """The next step up from ``vcpu`` (on the ladder or not); ``None`` at or over the top."""
        return next((step for step in self.steps if step > vcpu + EPS), None)

    def below(self, vcpu: float) -> float | None:
        """The next step down from ``vcpu`` (on the ladder or not); ``None`` at or under the floor."""
        return next((step for step in reversed(self.steps) if step < vcpu - EPS), None)

    def contains(self, vcpu: float) -> bool:
        return any(abs(vcpu - step) < EPS for step in self.steps)

    def index(self, vcpu: float) -> int:
        """The position of step ``vcpu`` (0 is the floor); ``ValueError`` off the ladder."""
        for position, step in enumerate(self.steps):
            if abs(vcpu - step) < EPS:
                return position
        raise ValueError(f"{vcpu:g} vCPU is not a step of the ladder {self}")

    @staticmethod
    def compare(a: float, b: float) -> int:
        """-1, 0 or 1 as vCPU amount ``a`` is less than, the same as (within ``EPS``) or more than ``b``."""
        if a > b + EPS:
            return 1
        if a < b - EPS:
            return -1
        return 0

    def __str__(self) -> str:
        return ", ".join(f"{step:g}" for step in self.steps)


class TierRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    approvals: int = Field(ge=0, le=5)
    cooldown_s: float = Field(ge=0)


class ActionRule(BaseModel):
    """First matching rule wins; ``component``/``incident``/``direction`` narrow the match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActionKind
    component: str | None = None
    incident: RootCauseClass | None = None
    tier: Tier


class Forbidden(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActionKind
    reason: str
    # Forbidden only when it would run without a human's approval (exec/debug).
    unless_approved: bool = False


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tiers: dict[Tier, TierRule]
    rules: tuple[ActionRule, ...]
    default_tier: Tier = "critical"
    forbidden: tuple[Forbidden, ...] = ()
    proposal_ttl_s: float = Field(default=3600, gt=0)
    vcpu_ladder: tuple[float, ...] = (1, 2, 4, 8)
    # An agent's request (through MCP, or marked ``agent``) waits for one person's approval whatever
    # its tier: a model must not both choose an action and let it run.
    agent_requests_need_human: bool = True

    @model_validator(mode="after")
    def _every_tier_defined(self) -> Policy:
        # classify() looks a verdict's tier up in ``tiers``: a gap would fail on the first action.
        missing = [tier for tier in TIER_RANK if tier not in self.tiers]
        if missing:
            raise ValueError(f"tiers must define every tier; missing: {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _ladder_has_steps(self) -> Policy:
        Ladder(self.vcpu_ladder)  # raises on an empty ladder or a step that is not positive
        return self

    @property
    def ladder(self) -> Ladder:
        """``vcpu_ladder`` as a ``Ladder``: sorted, each step once."""
        return Ladder(self.vcpu_ladder)


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the policy says of one action: its tier and demands, or why it is refused."""

    tier: Tier
    approvals_required: int
    cooldown_s: float
    refusal: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def auto(self) -> bool:
        return self.allowed and self.approvals_required == 0


DEFAULT_POLICY_FILE: Final = Path(__file__).with_name("policy.yaml")


def load_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_POLICY_FILE
    try:
        return Policy.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from exc
    except ValidationError as exc:
        raise PolicyError(f"invalid policy {path}: {exc}") from exc


def classify(
    action: Action, policy: Policy, *, incident: RootCauseClass | None = None, approvals: int = 0
) -> Verdict:
    """The verdict for ``action`` proposed for ``incident``, given ``approvals`` distinct approvers so far."""
    tier = _tier_of(action, policy, incident)
    rule = policy.tiers[tier]
    vcpu = getattr(action, "vcpu", None)
    # Off the ladder is never right, whoever asks: a request for 64 vCPU must not auto-approve.
    if isinstance(vcpu, float) and not on_ladder(vcpu, policy):
        ladder = ", ".join(f"{step:g}" for step in policy.vcpu_ladder)
        refusal = f"{vcpu:g} vCPU is not on the policy's vCPU ladder ({ladder})"
        return Verdict(tier, rule.approvals, rule.cooldown_s, refusal=refusal)
    for forbidden in policy.forbidden:
        if forbidden.kind != action.kind:
            continue
        if not forbidden.unless_approved:
            return Verdict(tier, rule.approvals, rule.cooldown_s, refusal=f"forbidden: {forbidden.reason}")
        if approvals < max(1, rule.approvals):
            return Verdict(
                tier,
                max(1, rule.approvals),
                rule.cooldown_s,
                refusal=f"forbidden without approval: {forbidden.reason}",
            )
    return Verdict(tier, rule.approvals, rule.cooldown_s)


def _tier_of(action: Action, policy: Policy, incident: RootCauseClass | None) -> Tier:
    component = getattr(action, "component", None)
    for rule in policy.rules:
        if rule.kind != action.kind:
            continue
        if rule.component is not None and rule.component != component:
            continue
        if rule.incident is not None and rule.incident != incident:
            continue
        return rule.tier
    return policy.default_tier


def on_ladder(vcpu: float, policy: Policy) -> bool:
    return policy.ladder.contains(vcpu)
