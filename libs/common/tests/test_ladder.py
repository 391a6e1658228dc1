"""The vCPU ladder: which step holds a load, the next step up or down, and what is on it."""

from __future__ import annotations

import pytest

from sentinai.common.policy import EPS, Ladder, load_policy

LADDER = Ladder((1, 2, 4, 8))
HALF = EPS / 2  # within the tolerance: the same amount
TWICE = EPS * 2  # beyond it: another amount


def test_steps_are_sorted_and_each_once() -> None:
    ladder = Ladder((4, 1, 2, 2))
    assert ladder.steps == (1.0, 2.0, 4.0)
    assert (ladder.floor, ladder.top) == (1.0, 4.0)
    assert str(ladder) == "1, 2, 4"


@pytest.mark.parametrize("steps", [(), (0, 1), (-1, 2)], ids=["empty", "zero-step", "negative-step"])
def test_a_ladder_needs_positive_steps(steps: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="at least one positive step"):
        Ladder(steps)


@pytest.mark.parametrize(
    ("cores", "step"),
    [
        pytest.param(0.1, 1.0, id="below-floor"),
        pytest.param(2.0, 2.0, id="exact-step"),
        pytest.param(2.0 - HALF, 2.0, id="just-below-step"),
        pytest.param(2.0 + HALF, 2.0, id="just-above-step-within-eps"),
        pytest.param(2.0 + TWICE, 4.0, id="just-above-step-beyond-eps"),
        pytest.param(3.0, 4.0, id="between-steps"),
        pytest.param(8.0, 8.0, id="top"),
        pytest.param(64.0, 8.0, id="beyond-top"),
    ],
)
def test_fit_is_the_smallest_step_that_holds_the_load(cores: float, step: float) -> None:
    assert LADDER.fit(cores) == step


def test_fit_without_tolerance_compares_exactly() -> None:
    # The predictor sizes its step exactly: a forecast a crumb over a step needs the next one.
    assert LADDER.fit(2.0 + HALF, tolerance=0.0) == 4.0
    assert LADDER.fit(2.0, tolerance=0.0) == 2.0


@pytest.mark.parametrize(
    ("vcpu", "up", "down"),
    [
        pytest.param(0.5, 1.0, None, id="below-floor"),
        pytest.param(1.0, 2.0, None, id="floor"),
        pytest.param(2.0, 4.0, 1.0, id="exact-step"),
        pytest.param(2.0 - HALF, 4.0, 1.0, id="just-below-step"),
        pytest.param(2.0 + HALF, 4.0, 1.0, id="just-above-step-within-eps"),
        pytest.param(2.0 - TWICE, 2.0, 1.0, id="just-below-step-beyond-eps"),
        pytest.param(2.0 + TWICE, 4.0, 2.0, id="just-above-step-beyond-eps"),
        pytest.param(3.0, 4.0, 2.0, id="between-steps"),
        pytest.param(8.0, None, 4.0, id="top"),
        pytest.param(64.0, None, 8.0, id="beyond-top"),
    ],
)
def test_the_next_step_up_and_down(vcpu: float, up: float | None, down: float | None) -> None:
    assert LADDER.above(vcpu) == up
    assert LADDER.below(vcpu) == down


@pytest.mark.parametrize(
    ("vcpu", "index"),
    [
        pytest.param(1.0, 0, id="floor"),
        pytest.param(4.0, 2, id="exact-step"),
        pytest.param(4.0 - HALF, 2, id="just-below-step"),
        pytest.param(4.0 + HALF, 2, id="just-above-step"),
        pytest.param(8.0, 3, id="top"),
        pytest.param(4.0 + TWICE, None, id="beyond-eps"),
        pytest.param(3.0, None, id="between-steps"),
        pytest.param(0.5, None, id="below-floor"),
        pytest.param(64.0, None, id="beyond-top"),
    ],
)
def test_what_is_on_the_ladder(vcpu: float, index: int | None) -> None:
    assert LADDER.contains(vcpu) is (index is not None)
    if index is None:
        with pytest.raises(ValueError, match="not a step"):
            LADDER.index(vcpu)
    else:
        assert LADDER.index(vcpu) == index


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        pytest.param(2.0, 2.0, 0, id="equal"),
        pytest.param(2.0 + HALF, 2.0, 0, id="above-within-eps"),
        pytest.param(2.0 - HALF, 2.0, 0, id="below-within-eps"),
        pytest.param(2.0 + TWICE, 2.0, 1, id="above-beyond-eps"),
        pytest.param(2.0 - TWICE, 2.0, -1, id="below-beyond-eps"),
        pytest.param(4.0, 2.0, 1, id="more"),
        pytest.param(1.0, 2.0, -1, id="less"),
    ],
)
def test_vcpu_amounts_compare_within_eps(a: float, b: float, order: int) -> None:
    assert Ladder.compare(a, b) == order


def test_the_policy_gives_its_ladder() -> None:
    policy = load_policy()
    assert policy.ladder == Ladder(policy.vcpu_ladder)
    assert policy.ladder.steps == tuple(sorted(policy.vcpu_ladder))


def test_a_policy_without_a_usable_ladder_is_refused() -> None:
    body = load_policy().model_dump()
    with pytest.raises(ValueError, match="at least one positive step"):
        type(load_policy()).model_validate({**body, "vcpu_ladder": []})
