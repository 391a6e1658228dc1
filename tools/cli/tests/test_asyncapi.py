"""`sentinai asyncapi`: the committed document is current, complete and internally consistent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinai.cli import asyncapi
from sentinai.cli.main import main
from sentinai.common import subjects
from sentinai.common.payloads import CORE_FAMILIES, FAMILIES

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / asyncapi.OUTPUT
KEY = re.compile(r"^[A-Za-z0-9_\-]+$")  # AsyncAPI 3.0's pattern for channel and operation ids


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("asyncapi") / "asyncapi.json"
    assert main(["asyncapi", "--out", str(out)]) == 0
    return out.read_text()


@pytest.fixture(scope="module")
def doc(generated: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(generated)
    return loaded


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def test_the_committed_document_is_what_the_wiring_generates_today(generated: str) -> None:
    assert COMMITTED.read_text() == generated, "the bus changed: run `make asyncapi` and commit the result"


def test_every_subject_constant_appears_in_the_document(doc: dict[str, Any]) -> None:
    constants = {name: v for name, v in vars(subjects).items() if name.isupper() and isinstance(v, str)}
    texts = list(strings(doc))
    missing = [name for name, value in constants.items() if not any(value in text for text in texts)]
    assert constants and missing == []


def test_each_family_is_a_channel_whose_message_is_the_event_model_schema(doc: dict[str, Any]) -> None:
    channels = doc["channels"]
    schemas = doc["components"]["schemas"]
    everyone = (*FAMILIES, *CORE_FAMILIES)
    assert {c["address"] for c in channels.values()} == {f.address for f in everyone}
    for family in everyone:
        name = family.model.__name__
        (channel,) = (c for c in channels.values() if c["address"] == family.address)
        assert channel["messages"] == {name: {"$ref": f"#/components/messages/{name}"}}
        if family.stream is None:  # a core-NATS reply: no stream may claim to keep it
            assert "x-jetstream" not in channel
        else:
            assert channel["x-jetstream"]["stream"] == family.stream.name
        required = {f.alias or n for n, f in family.model.model_fields.items() if f.is_required()}
        assert set(schemas[name].get("required", [])) == required, name


def test_every_subject_has_a_publisher_and_every_one_but_dead_letters_a_consumer(doc: dict[str, Any]) -> None:
    by_channel: dict[str, set[str]] = {key: set() for key in doc["channels"]}
    for operation in doc["operations"].values():
        by_channel[operation["channel"]["$ref"].rsplit("/", 1)[-1]].add(operation["action"])
    assert {key for key, actions in by_channel.items() if "send" not in actions} == set()
    assert {key for key, actions in by_channel.items() if "receive" not in actions} == {"deadletter"}


def test_the_subscriptions_come_from_the_services_own_wiring(doc: dict[str, Any]) -> None:
    planner = {
        op["channel"]["$ref"].rsplit("/", 1)[-1]
        for op in doc["operations"].values()
        if op["tags"] == [{"name": "planner"}] and op["action"] == "receive"
    }
    assert planner == {
        "rca-completed",
        "prediction-made",
        "incident-resolved",
        "action-command",
        "action-requested",
        "action-executed",
        "audit",
    }
    executor = doc["operations"]["executor-receive-action-approved"]
    assert executor["bindings"]["nats"]["queue"] == "executor"  # replicas share the approvals
    assert "faststream handler `OnApproved`" in executor["summary"]


def test_every_reference_resolves_and_every_id_is_valid(doc: dict[str, Any]) -> None:
    refs = [text for text in strings(doc) if text.startswith("#/")]
    assert refs
    for ref in refs:
        node: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]
    assert all(KEY.match(key) for key in [*doc["channels"], *doc["operations"]])
    assert {t["name"] for t in doc["info"]["tags"]} == {
        t["name"] for op in doc["operations"].values() for t in op["tags"]
    }
