"""Every metric a diagnosis reads is one the collector publishes: no signature branch waits on a
series that only the twin's internal snapshot has (and so never fires on a real chain)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.eval.scenarios import Scenario
from bench.eval.telemetry import generate
from sentinai.common.incidents import INCIDENT_CLASSES
from sentinai.rca.evidence import TARGET_UP, Facts, Held
from sentinai.rca.signatures import SIGNATURES
from services.rca.tests.scenes import SCENES, timed

HEALTHY = Scenario.model_validate(
    {
        "id": "published_probe",
        "description": "a healthy chain, read the way the collector reads it",
        "seed": 5,
        "durationS": 60,
        "timeline": [],
        "truth": {"fault": False, "rootCause": None, "components": [], "action": None, "tier": None},
    }
)


class Recording(Facts):
    """Facts that remember every (component, metric) a signature asked for."""

    read: set[tuple[str, str]] = set()

    def series(self, component: str, metric: str) -> list[float]:
        Recording.read.add((component, metric))
        return super().series(component, metric)

    def timed(self, component: str, metric: str) -> list[tuple[float, float]]:
        Recording.read.add((component, metric))
        return super().timed(component, metric)

    def held(
        self, component: str, metric: str, holds: Callable[[float], bool], *, recurring: bool = False
    ) -> Held:
        Recording.read.add((component, metric))
        return super().held(component, metric, holds, recurring=recurring)


def _published() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for poll in generate(HEALTHY):
        for sample in poll.samples:
            out |= {(sample.component, metric) for metric in sample.metrics}
            out.add((sample.component, TARGET_UP))  # the rca folds a target's up/down in as a series
    return out


def _reads(contexts: Sequence[object]) -> set[tuple[str, str]]:
    Recording.read = set()
    for ctx in contexts:
        facts = Recording(ctx)  # type: ignore[arg-type]
        for signature in SIGNATURES.values():
            signature(facts)
    return set(Recording.read)


def test_every_metric_a_signature_reads_is_published_by_the_collector() -> None:
    contexts = [timed(SCENES[cls]()) for cls in INCIDENT_CLASSES]
    reads = _reads(contexts)
    assert len(reads) > 20  # the probe saw the signatures' reads at all
    unpublished = sorted(reads - _published())
    assert unpublished == []
