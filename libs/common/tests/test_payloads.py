"""The bus contract table: every subject we publish has one payload model and lands in its stream."""

from __future__ import annotations

import pytest

from sentinai.common import streams, subjects
from sentinai.common.payloads import FAMILIES, Family, family_of, kind_of

PUBLISHED = {
    subjects.metrics_raw("c1", "op-geth"): "metric_sample",
    subjects.logs_raw("c1", "op-node"): "log_batch",
    subjects.anomaly_detected("c1"): "anomaly_detected",
    subjects.anomaly_resolved("c1"): "anomaly_resolved",
    subjects.rca_completed("c1"): "rca_completed",
    subjects.incident_resolved("c1"): "incident_resolved",
    subjects.prediction_made("c1"): "prediction_made",
    subjects.action_proposed("c1"): "action_proposed",
    subjects.action_approved("c1"): "action_approved",
    subjects.action_executed("c1"): "action_executed",
    subjects.action_command("c1"): "action_command",
    subjects.action_requested("c1"): "action_requested",
    subjects.audit("c1"): "audit_recorded",
    subjects.dead_letter("rca"): "dead_letter",
}


@pytest.mark.parametrize(("subject", "kind"), PUBLISHED.items(), ids=list(PUBLISHED))
def test_every_published_subject_has_one_family_named_by_its_payload(subject: str, kind: str) -> None:
    assert [f.kind for f in FAMILIES if f.carries(subject)] == [kind]
    assert kind_of(subject) == kind


def test_a_subject_outside_the_contract_is_other() -> None:
    assert family_of("metrics.raw.c1") is None  # one token short
    assert kind_of("_INBOX.abc") == "other"


@pytest.mark.parametrize("family", FAMILIES, ids=[f.prefix for f in FAMILIES])
def test_each_family_is_stored_by_its_declared_stream_and_no_other(family: Family) -> None:
    storing = [s.name for s in streams.ALL if any(family.matched_by(p) for p in s.subjects)]
    assert storing == [family.stream.name]


@pytest.mark.parametrize(
    ("pattern", "kinds"),
    [
        (subjects.ANOMALY_ALL, {"anomaly_detected", "anomaly_resolved"}),
        (subjects.metrics_raw_component("op-geth"), {"metric_sample"}),
        (subjects.AUDIT_ALL, {"audit_recorded"}),
        (
            "action.*.*",
            {"action_proposed", "action_approved", "action_executed", "action_command", "action_requested"},
        ),
        ("metrics.raw.*", set()),
    ],
    ids=["anomaly.>", "one-component", "audit", "every-action", "too-short"],
)
def test_a_subscription_pattern_receives_the_families_it_matches(pattern: str, kinds: set[str]) -> None:
    assert {f.kind for f in FAMILIES if f.matched_by(pattern)} == kinds


def test_addresses_name_their_parameters() -> None:
    assert [f.address for f in FAMILIES if f.kind in ("metric_sample", "dead_letter")] == [
        "metrics.raw.{chainId}.{component}",
        "deadletter.{service}",
    ]
