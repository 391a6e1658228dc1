"""deploy/grafana/sentinai.json: a loadable dashboard whose every query names a metric we export."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy/grafana/sentinai.json"
SERVICES = ("collector", "detector", "rca", "predictor", "planner", "executor")
# The api's read-model metrics (sentinai_chain_metric{chain,metric} …), exported by the api service.
API_METRICS = {
    "sentinai_chain_metric",
    "sentinai_anomalies_total",
    "sentinai_rca_latency_seconds_bucket",
    "sentinai_rca_latency_seconds_count",
    "sentinai_rca_latency_seconds_sum",
    "sentinai_actions_total",
    "sentinai_approvals_pending",
}
METRIC = re.compile(r"\bsentinai_[a-z0-9_]*[a-z0-9]")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
}


def exported() -> set[str]:
    """Every series name the services register, including ones no message has touched yet."""
    for service in SERVICES:
        importlib.import_module(f"sentinai.{service}.main")
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
        if family.name.startswith("sentinai_")
    }


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["query"]["query"]


def test_the_prometheus_datasource_is_a_variable_every_panel_uses(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]


def test_every_query_names_a_metric_some_service_exports(dashboard: dict[str, Any]) -> None:
    known = exported() | API_METRICS
    used = {name for expr in queries(dashboard) for name in METRIC.findall(expr)}
    assert used - known == set()


def test_the_operator_questions_each_have_a_panel(dashboard: dict[str, Any]) -> None:
    used = {name for expr in queries(dashboard) for name in METRIC.findall(expr)}
    assert used >= {
        "sentinai_chain_metric",
        "sentinai_anomalies_total",
        "sentinai_rca_latency_seconds_bucket",
        "sentinai_actions_total",
        "sentinai_approvals_pending",
        "sentinai_consumer_pending",
        "sentinai_messages_handled_total",
        "sentinai_dead_letters_total",
        "sentinai_handler_seconds_bucket",
    }


def test_panels_have_unique_ids_and_fit_the_grid(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
