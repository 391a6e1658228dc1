"""docs/incidents.md is the catalogue's data as rendered by `sentinai catalogue`: never stale."""

from __future__ import annotations

from pathlib import Path

from sentinai.cli import catalogue
from sentinai.cli.main import main
from sentinai.common.incidents import INCIDENT_CLASSES, MARKERS

ROOT = Path(__file__).resolve().parents[3]


def test_the_docs_page_is_current() -> None:
    page = (ROOT / catalogue.OUTPUT).read_text()
    assert page == catalogue.render(), "docs/incidents.md is stale: run `make docs`"


def test_the_page_lists_every_class_rule_and_marker_source(capsys: object) -> None:
    assert main(["catalogue"]) == 0
    text = capsys.readouterr().out  # type: ignore[attr-defined]
    for cls in INCIDENT_CLASSES:
        assert f"| `{cls}` |" in text
    for marker in MARKERS:
        assert marker.source in text
