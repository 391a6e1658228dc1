"""Deterministic event ids: one scheme, so a republished event is kept once wherever it comes from."""

from __future__ import annotations

import hashlib
import re

import pytest

from sentinai.common.decisions import IncidentResolved, incident_resolved_id
from sentinai.common.events import derived_id


def _blake2b(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def test_an_id_is_32_lowercase_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", derived_id("rca", "ep-1", "anomaly-1"))


def test_the_same_parts_give_the_same_id_and_other_parts_another() -> None:
    assert derived_id("audit", "e-1") == derived_id("audit", "e-1")
    assert len({derived_id("audit", "e-1"), derived_id("audit", "e-2"), derived_id("rca", "e-1")}) == 3


def test_the_scheme_is_pinned() -> None:
    # Stored ids (JetStream's duplicate window, the state store) outlive a release: never change it.
    assert derived_id("audit", "abc") == "ee2d8d47259690e6eedf7c74da6d0755"


@pytest.mark.parametrize(
    ("parts", "formerly"),
    [
        pytest.param(
            ("opmain", "op-geth", "cpuUsage", "zscore", "e-1"),
            "opmain|op-geth|cpuUsage|zscore|e-1",
            id="detector-episode",
        ),
        pytest.param(("ep-1", "resolved"), "ep-1|resolved", id="detector-resolution"),
        pytest.param(("rca", "ep-1", "basis"), "rca|ep-1|basis", id="rca-diagnosis"),
        pytest.param(("audit", "e-1"), "audit|e-1", id="rca-audit"),
        pytest.param(("incident", "opmain", "ep-1"), "incident|opmain|ep-1", id="rca-incident"),
        pytest.param(
            ("opmain", "ets", "2026-11-27T01:00:00+00:00", 900.0),
            "opmain|ets|2026-11-27T01:00:00+00:00|900.0",
            id="predictor-prediction",
        ),
    ],
)
def test_the_ids_services_derived_with_blake2b_stay_the_same(
    parts: tuple[str | float, ...], formerly: str
) -> None:
    assert derived_id(*parts) == _blake2b(formerly)


def test_numbers_count_as_their_text() -> None:
    assert derived_id("tick", 3, 2.5) == derived_id("tick", "3", "2.5")


def test_no_parts_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        derived_id()


def test_an_incident_resolution_has_a_derived_event_id() -> None:
    assert incident_resolved_id("opmain", "ep-1") == derived_id("incident-resolved", "opmain", "ep-1")
    bare = b'{"chainId": "opmain", "incidentId": "ep-1", "resolvedAt": "2026-11-27T01:00:00Z", "reason": "r"}'
    assert IncidentResolved.model_validate_json(bare).event_id == incident_resolved_id("opmain", "ep-1")
