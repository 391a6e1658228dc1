"""`sentinai asyncapi`: the whole bus as one AsyncAPI 3.0 document, from the services' own wiring.

faststream describes the subscribers each service's broker declares (built, never connected). The
services publish with ``broker.publish`` and the detector consumes with nats-py pull loops, so
those sides come from the tables below, and every payload schema from the event models named in
``payloads.FAMILIES``. ``make asyncapi`` writes the file the api serves at ``/asyncapi``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic.json_schema import models_json_schema

from sentinai.common import subjects
from sentinai.common.bus import BrokerPublisher, build_broker
from sentinai.common.payloads import ANSWERS, CHAIN, COMPONENT, CORE_FAMILIES, FAMILIES, SERVICE, Family
from sentinai.common.streams import ALL as STREAMS
from sentinai.common.streams import DAY, HOUR

TITLE = "SentinAI bus"
OUTPUT = Path("services/api/src/sentinai/api/static/asyncapi.json")
SCHEMAS = "#/components/schemas/{model}"

# Every party on the bus, in pipeline order: the document's tags.
SERVICES: dict[str, str] = {
    "collector": "Polls each chain's RPC endpoints and Kubernetes pods; publishes telemetry.",
    "detector": "Scores telemetry against recent history; opens and closes anomaly episodes.",
    "rca": "Diagnoses each incident from telemetry, logs and recent actions (rules, optionally an LLM).",
    "predictor": "Forecasts op-geth's CPU need per chain on an interval.",
    "planner": "Turns diagnoses, forecasts and requests into proposals under policy; judges commands.",
    "executor": "Carries out approved actions on the cluster (dry run by default), verifies, rolls back.",
    "api": "Front door: REST, SSE and MCP over a read model of every subject; writes commands and requests.",
}

# Publishing goes through ``broker.publish``, which faststream cannot see: declared here.
SENDS: dict[str, tuple[str, ...]] = {
    "collector": (subjects.METRICS_RAW, subjects.LOGS_RAW),
    "detector": (subjects.ANOMALY_DETECTED, subjects.ANOMALY_RESOLVED, subjects.DEAD_LETTER),
    "rca": (subjects.RCA_COMPLETED, subjects.INCIDENT_RESOLVED, subjects.AUDIT, subjects.DEAD_LETTER),
    "predictor": (subjects.PREDICTION_MADE, subjects.DEAD_LETTER),
    "planner": (
        subjects.ACTION_PROPOSED,
        subjects.ACTION_APPROVED,
        subjects.ACTION_VERDICT,
        subjects.AUDIT,
        subjects.DEAD_LETTER,
    ),
    "executor": (subjects.ACTION_EXECUTED, subjects.AUDIT, subjects.DEAD_LETTER),
    "api": (subjects.ACTION_COMMAND, subjects.ACTION_REQUESTED, subjects.DEAD_LETTER),
}

PARAMETERS = {
    CHAIN: "The chain id from chains.yaml (letters, digits, '-', '_').",
    COMPONENT: "The OP Stack component: op-geth, op-node, op-batcher or op-proposer.",
    SERVICE: "The service that could not use the message.",
    ANSWERS: "The first 32 hex digits of the SHA-256 of the eventId of the command or request answered.",
}


@dataclass(frozen=True, slots=True)
class Receive:
    service: str
    subject: str
    how: str
    queue: str | None = None


# Consumers that are not faststream subscribers, or whose wiring is not built here.
OTHER_RECEIVES: tuple[Receive, ...] = (
    Receive("detector", subjects.METRICS_RAW_ALL, "nats-py pull loop on durable `detector-metrics`"),
    Receive("detector", subjects.LOGS_RAW_ALL, "nats-py pull loop on durable `detector-logs`"),
    Receive("rca", subjects.METRICS_RAW_ALL, "nats-py pull loop on durable `rca-metrics`"),
    Receive("rca", subjects.LOGS_RAW_ALL, "nats-py pull loop on durable `rca-logs`"),
    Receive("predictor", subjects.METRICS_RAW_ALL, "nats-py pull loop on durable `predictor` (op-geth only)"),
    Receive("executor", subjects.METRICS_RAW_ALL, "core subscription to one chain while verifying an action"),
    Receive("api", subjects.METRICS_RAW_ALL, "nats-py pull loop on the replica's own consumer (no acks)"),
    Receive(
        "api", subjects.ACTION_VERDICT_ALL, "core subscription per write, awaiting the planner's verdict"
    ),
    *(
        Receive("api", pattern, "ephemeral consumer folding events into the read model")
        for pattern in (
            subjects.ANOMALY_ALL,
            subjects.RCA_COMPLETED_ALL,
            subjects.PREDICTION_MADE_ALL,
            subjects.ACTION_PROPOSED_ALL,
            subjects.ACTION_APPROVED_ALL,
            subjects.ACTION_EXECUTED_ALL,
            subjects.AUDIT_ALL,
        )
    ),
)


def wired_brokers() -> dict[str, NatsBroker]:
    """Each service's broker with its subscribers, as its composition root builds it, never connected."""
    # Imported here, not at the top: the rca's LLM client costs seconds, and every other `sentinai`
    # command imports this module for its parser.
    from sentinai.common.dedup import SeenIds  # noqa: PLC0415
    from sentinai.common.policy import load_policy  # noqa: PLC0415
    from sentinai.common.state import RedisStateStore  # noqa: PLC0415
    from sentinai.executor import bus as executor_bus  # noqa: PLC0415
    from sentinai.executor.feed import SampleFeed  # noqa: PLC0415
    from sentinai.executor.service import Executor  # noqa: PLC0415
    from sentinai.executor.settings import ExecutorSettings  # noqa: PLC0415
    from sentinai.planner import bus as planner_bus  # noqa: PLC0415
    from sentinai.planner.settings import PlannerSettings  # noqa: PLC0415
    from sentinai.predictor import bus as predictor_bus  # noqa: PLC0415
    from sentinai.predictor import logic as predictor_logic  # noqa: PLC0415
    from sentinai.predictor.settings import PredictorSettings  # noqa: PLC0415
    from sentinai.predictor.windows import PredictorState  # noqa: PLC0415
    from sentinai.rca import bus as rca_bus  # noqa: PLC0415
    from sentinai.rca.settings import RcaSettings  # noqa: PLC0415

    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    rca = RcaSettings()
    predictor = PredictorSettings()
    forecaster = predictor_logic.StatForecaster(block_time_s=predictor.block_time_s, min_points=2)
    predictor_deps = predictor_bus.Deps(
        state=PredictorState(max_points=1, span_s=1.0, seen=SeenIds(1)), forecaster=forecaster
    )
    executor = ExecutorSettings(chains_file=Path("chains.yaml"))
    executor_broker = build_broker(executor)
    runner = Executor(
        settings=executor,
        policy=load_policy(),
        chains={},
        clusters={},
        # redis connects on its first command, which describing the wiring never sends.
        store=RedisStateStore.from_url("redis://127.0.0.1:6379"),
        feed=SampleFeed(lambda: executor_broker.connection),
        publisher=BrokerPublisher(executor_broker),
        instance="asyncapi",
    )
    executor_bus.subscribe(executor_broker, runner, settings=executor, inflight=executor_bus.Inflight())
    return {
        "rca": rca_bus.build(rca, rca_bus.deps_from(rca), now=epoch).broker,
        "predictor": predictor_bus.build(predictor, predictor_deps, start=epoch).broker,
        "planner": planner_bus.build(PlannerSettings(), planner_bus.Deps(policy=load_policy()))[0],
        "executor": executor_broker,
    }


def faststream_receives(service: str, broker: NatsBroker) -> Iterator[Receive]:
    """The subscriptions faststream documents for ``broker`` (channel keys are ``subject:Handler``)."""
    spec = AsyncAPI(broker, schema_version="3.0.0").to_specification().to_jsonable()
    for operation in spec.get("operations", {}).values():
        key = unquote(operation["channel"]["$ref"].rsplit("/", 1)[-1])
        nats = spec["channels"][key].get("bindings", {}).get("nats", {})
        handler = key.rpartition(":")[2]
        yield Receive(service, nats["subject"], f"faststream handler `{handler}`", nats.get("queue") or None)


def channel_id(family: Family) -> str:
    return family.prefix.replace(".", "-")


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _channel(family: Family) -> dict[str, Any]:
    stream = family.stream
    if stream is None:
        return {
            "address": family.address,
            "title": family.prefix,
            "summary": family.summary,
            "description": f"Every subject matches `{family.wildcard}`; core NATS only, never stored.",
            "parameters": {p: {"description": PARAMETERS[p]} for p in family.params},
            "messages": {family.model.__name__: _ref("components", "messages", family.model.__name__)},
        }
    return {
        "address": family.address,
        "title": family.prefix,
        "summary": family.summary,
        "description": f"Every subject matches `{family.wildcard}`; JetStream keeps them in `{stream.name}`.",
        "parameters": {p: {"description": PARAMETERS[p]} for p in family.params},
        "messages": {family.model.__name__: _ref("components", "messages", family.model.__name__)},
        "x-jetstream": {
            "stream": stream.name,
            "streamSubjects": list(stream.subjects),
            "maxAgeS": stream.max_age_s,
            "maxBytes": stream.max_bytes,
            "duplicateWindowS": stream.duplicate_window_s,
        },
    }


def _message(family: Family) -> dict[str, Any]:
    name = family.model.__name__
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": family.summary,
        "contentType": "application/json",
        "payload": _ref("components", "schemas", name),
    }
    if "event_id" in family.model.model_fields:
        message["correlationId"] = {"location": "$message.payload#/correlationId"}
    if "event_id" in family.model.model_fields and family.stream is not None:
        message["headers"] = {
            "type": "object",
            "properties": {
                "Nats-Msg-Id": {
                    "type": "string",
                    "description": "The eventId: JetStream stores a retried publish once.",
                }
            },
        }
    return message


def _operation(
    family: Family, *, service: str, action: str, summary: str, queue: str | None
) -> dict[str, Any]:
    channel = channel_id(family)
    operation: dict[str, Any] = {
        "action": action,
        "channel": _ref("channels", channel),
        "messages": [_ref("channels", channel, "messages", family.model.__name__)],
        "title": f"{service} {action}s {family.prefix}",
        "summary": summary,
        "tags": [{"name": service}],
    }
    if queue:
        operation["bindings"] = {"nats": {"queue": queue, "bindingVersion": "0.1.0"}}
    return operation


def operations(receives: list[Receive]) -> dict[str, dict[str, Any]]:
    by_prefix = {f.prefix: f for f in (*FAMILIES, *CORE_FAMILIES)}
    found: dict[str, dict[str, Any]] = {}
    for service, prefixes in SENDS.items():
        for prefix in prefixes:
            family = by_prefix[prefix]
            summary = (
                f"Published to `{family.wildcard}` with `Nats-Msg-Id`, acknowledged by JetStream."
                if family.stream is not None
                else f"Published to `{family.wildcard}` on core NATS, unacknowledged and never stored."
            )
            found[f"{service}-send-{channel_id(family)}"] = _operation(
                family, service=service, action="send", summary=summary, queue=None
            )
    for receive in sorted(receives, key=lambda r: (r.service, r.subject, r.how)):
        for family in (*FAMILIES, *CORE_FAMILIES):
            if not family.matched_by(receive.subject):
                continue
            key = f"{receive.service}-receive-{channel_id(family)}"
            summary = f"Subscribed to `{receive.subject}`: {receive.how}."
            if key in found:  # a second subscription of the same service to the same family
                found[key]["summary"] += " " + summary
                continue
            found[key] = _operation(
                family, service=receive.service, action="receive", summary=summary, queue=receive.queue
            )
    return found


def _age(seconds: float) -> str:
    return f"{seconds / DAY:g} days" if seconds >= DAY else f"{seconds / HOUR:g} hours"


def _description() -> str:
    retention = "\n".join(
        f"- `{s.name}`: {', '.join(f'`{p}`' for p in s.subjects)}, kept {_age(s.max_age_s)}" for s in STREAMS
    )
    return (
        "Every NATS subject SentinAI services publish or consume, with its JSON payload. Subjects carry "
        "the chain id (and the component) as tokens, so one deployment watches many chains. Payloads "
        "are camelCase JSON; each event has `eventId` (also the `Nats-Msg-Id` header, so a retried "
        "publish is stored once), `correlationId` (one incident across services), a timezone-aware "
        "`occurredAt` and `chainId`. A message a consumer cannot use goes to `deadletter.<service>` "
        f"and is acknowledged.\n\nJetStream streams:\n{retention}\n"
    )


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the whole bus, the same on every run."""
    receives = [
        r for service, broker in wired_brokers().items() for r in faststream_receives(service, broker)
    ]
    _, schemas = models_json_schema(
        [(family.model, "validation") for family in (*FAMILIES, *CORE_FAMILIES)], ref_template=SCHEMAS
    )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": TITLE,
            "version": version("sentinai-common"),
            "description": _description(),
            "tags": [{"name": name, "description": text} for name, text in SERVICES.items()],
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "nats-server with JetStream; `sentinai up` runs one on a free port "
                "(its URL is in <state>/up.json).",
            }
        },
        "channels": {channel_id(f): _channel(f) for f in (*FAMILIES, *CORE_FAMILIES)},
        "operations": operations([*receives, *OTHER_RECEIVES]),
        "components": {
            "messages": {f.model.__name__: _message(f) for f in (*FAMILIES, *CORE_FAMILIES)},
            "schemas": schemas.get("$defs", {}),
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("asyncapi", help="print (or write) the AsyncAPI document of the whole bus")
    parser.add_argument("--out", type=Path, help=f"write here instead of stdout (`make asyncapi`: {OUTPUT})")


def command(args: argparse.Namespace) -> int:
    text = render()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0
