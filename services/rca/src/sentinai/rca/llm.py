"""The optional LLM opinion through litellm: prompt, call with a deadline, schema check, merge with the rules.

The LLM can only pick a class of the catalogue, and can only win with a class the rules found
evidence for; it never produces an action. Every failure falls back to the rules' answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from string import Template
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from sentinai.common.decisions import RcaEngine
from sentinai.common.events import AnomalyDetected, Component, Severity
from sentinai.common.incidents import INCIDENT_CLASSES, RootCauseClass
from sentinai.rca.evidence import Facts, quote
from sentinai.rca.model import Diagnosis, RcaContext
from sentinai.rca.signatures import spec_of

# litellm fetches its model cost map from the internet at import unless told not to; an RCA must never
# hang on a network it may not have. Set before the import below.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

# Its "Give Feedback / Get Help" banners go to stdout, which must stay JSON log lines.
litellm.suppress_debug_info = True
log = logging.getLogger(__name__)

# A candidate the LLM may promote over the rules' top answer needs at least this much rule evidence.
CANDIDATE_MIN: Final = 0.35
_VALUES_SHOWN: Final = 10
_USER_MARK: Final = "<!-- user -->"


class LlmAnswer(BaseModel):
    """The JSON the model must return; anything else is a failure."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")

    root_cause: str = Field(min_length=1, max_length=2000)
    root_cause_class: RootCauseClass
    affected_components: tuple[Component, ...] = ()
    risk_level: Severity
    action_plan: str = Field(default="", max_length=2000)
    confidence: float = Field(ge=0, le=1)


@dataclass(frozen=True, slots=True)
class LlmConfig:
    model: str
    api_base: str | None
    api_key: str | None = field(repr=False)
    timeout_s: float
    max_tokens: int
    fallback_s: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the RCA publishes: the diagnosis, which engine stands behind it, and what the LLM cost."""

    diagnosis: Diagnosis
    engine: RcaEngine
    model: str | None
    cost_usd: float
    failure: str | None = None


class LlmFailureError(RuntimeError):
    """The model's answer could not be used (HTTP error, timeout, bad JSON, schema, class)."""


# ---------------------------------------------------------------------------------------- prompt


def _template() -> tuple[Template, Template]:
    text = resources.files("sentinai.rca").joinpath("prompts/rca.md").read_text(encoding="utf-8")
    system, user = text.split(_USER_MARK, 1)
    return Template(system.strip()), Template(user.strip())


def _clean(line: str) -> str:
    """One printable line: control characters could fake a new line or hide text from an operator."""
    return "".join(c if c.isprintable() else " " for c in line)[:500]


def _quotes_description(evidence: str, anomalies: Sequence[AnomalyDetected]) -> bool:
    """Is ``evidence`` the rules' quote (``<component>: <description…>``) of an anomaly's description?"""
    for a in anomalies:
        head = f"{a.component}: "
        if evidence.startswith(head) and a.description.startswith(evidence[len(head) :]):
            return True
    return False


def build_messages(ctx: RcaContext, rules: Diagnosis) -> list[dict[str, str]]:
    """System and user messages; log text and anomaly descriptions appear only in the fenced block.

    A description is data too: the detector quotes matched log lines and a target's RPC error text in
    it, and whoever controls a log line or an RPC answer controls that text.
    """
    facts = Facts(ctx)
    anomalies = tuple({a.event_id: a for a in (ctx.anomaly, *ctx.active)}.values())
    log_lines = [(c, line) for c, lines in sorted(facts.logs.items()) for line in lines]
    log_quotes = {quote(c, line) for c, line in log_lines}
    data = [f"{a.component} anomaly {a.metric}: {a.description}" for a in anomalies]
    data += [f"{c}: {line}" for c, line in log_lines]
    body = "\n".join(_clean(line) for line in data) or "(no log lines)"
    # The fence is derived from the data, so a line cannot guess it and close the block early.
    fence = hashlib.blake2b(body.encode(), digest_size=8).hexdigest()

    def shown(evidence: Sequence[str]) -> str:
        def one(e: str) -> str:
            if e in log_quotes:
                return "[log line, see UNTRUSTED DATA]"
            if _quotes_description(e, anomalies):
                return "[anomaly description, see UNTRUSTED DATA]"
            return e

        return "; ".join(one(e) for e in evidence)

    def anomaly_line(a: AnomalyDetected) -> str:
        return f"- {a.component} {a.metric}={a.value:g} ({a.rule}, {a.severity})"

    metrics = [
        f"- {c} {m}: {', '.join(f'{v:g}' for v in values[-_VALUES_SHOWN:])}"
        for c, ms in sorted(ctx.metrics.items())
        for m, values in sorted(ms.items())
        if values
    ]
    hypotheses = [
        f"- {h.cause} (score {h.score:.2f}): {h.summary}. Evidence: {shown(h.evidence)}"
        for h in rules.hypotheses
    ]
    actions = [f"- {a.action.summary()}: {a.outcome}" for a in ctx.recent_actions]
    system, user = _template()
    fields = {
        "classes": ", ".join(f'"{c}"' for c in INCIDENT_CLASSES),
        "chain": ctx.chain_id,
        "block_time": f"{ctx.block_time_s:g}",
        "anomaly": anomaly_line(ctx.anomaly),
        "active": "\n".join(anomaly_line(a) for a in ctx.active) or "(none)",
        "metrics": "\n".join(metrics) or "(none)",
        "hypotheses": "\n".join(hypotheses) or "(none: the engine found no signature)",
        "actions": "\n".join(actions) or "(none)",
        "fence": fence,
        "logs": body,
    }
    return [
        {"role": "system", "content": system.substitute(fields)},
        {"role": "user", "content": user.substitute(fields)},
    ]


# ----------------------------------------------------------------------------------- parse, merge


def parse_answer(text: str) -> LlmAnswer:
    """The model's JSON (a ```json fence tolerated), validated; raises ``LlmFailureError``."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        return LlmAnswer.model_validate_json(stripped)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise LlmFailureError(f"answer does not fit the schema: {where}: {first['msg']}") from exc


def merge(rules: Diagnosis, answer: LlmAnswer) -> tuple[Diagnosis, RcaEngine, str | None]:
    """Combine the two opinions; returns the diagnosis, the engine credited, and why the LLM lost if it did.

    Risk and action plan always come from the catalogue: free text never reaches the planner as a plan.
    """
    if answer.root_cause_class == rules.root_cause_class:
        refined = replace(
            rules,
            root_cause=answer.root_cause if rules.root_cause_class != "unknown" else rules.root_cause,
            confidence=round(max(rules.confidence, (rules.confidence + answer.confidence) / 2), 2),
        )
        return refined, "both", None
    if answer.root_cause_class == "unknown":
        return rules, "rules", "the LLM found the evidence inconclusive; the rules' answer stands"
    candidate = next(
        (h for h in rules.hypotheses if h.cause == answer.root_cause_class and h.score >= CANDIDATE_MIN), None
    )
    if candidate is None:
        return rules, "rules", f"the LLM chose {answer.root_cause_class}, which the evidence does not support"
    spec = spec_of(candidate.cause)
    chosen = Diagnosis(
        root_cause=answer.root_cause,
        root_cause_class=candidate.cause,
        affected_components=spec.affected,
        risk_level=spec.risk,
        action_plan=spec.action_plan,
        hypotheses=rules.hypotheses,
        evidence=candidate.evidence,
        confidence=round(min(answer.confidence, candidate.score), 2),
    )
    return chosen, "llm", None


# ------------------------------------------------------------------------------------------- call


def _cost(response: Any) -> float:
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # a model missing from the local cost map has no price, which is not an error
        return 0.0


def _supports_json_mode(model: str) -> bool:
    try:
        params = litellm.get_supported_openai_params(model=model) or []
    except Exception:
        return False
    return "response_format" in params


async def _ask(messages: list[dict[str, str]], *, config: LlmConfig) -> tuple[LlmAnswer, float]:
    extra: dict[str, Any] = {}
    if _supports_json_mode(config.model):
        extra["response_format"] = {"type": "json_object"}
    try:
        response = await litellm.acompletion(
            model=config.model,
            api_base=config.api_base,
            api_key=config.api_key,
            messages=messages,
            timeout=config.timeout_s,
            max_tokens=config.max_tokens,
            temperature=0,
            num_retries=0,
            **extra,
        )
    except Exception as exc:
        raise LlmFailureError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError) as exc:
        raise LlmFailureError("response has no message content") from exc
    if not isinstance(content, str):
        raise LlmFailureError("response has no message content")
    return parse_answer(content), _cost(response)


async def consult(ctx: RcaContext, rules: Diagnosis, *, config: LlmConfig) -> Outcome:
    """Ask the model; on any failure return the rules' answer, never later than the deadline."""
    started = time.perf_counter()
    # litellm's own timeout should fire first; this bounds whatever it does not cover, with half the
    # fallback budget left so the rules' answer still goes out within ``fallback_s`` of the timeout.
    deadline = config.timeout_s + config.fallback_s / 2
    try:
        answer, cost = await asyncio.wait_for(
            _ask(build_messages(ctx, rules), config=config), timeout=deadline
        )
    except (LlmFailureError, TimeoutError) as exc:
        why = str(exc) or f"no answer within {deadline:g}s"
        log.warning(
            "LLM answer unusable, using the rules' diagnosis",
            extra={
                "model": config.model,
                "reason": why,
                "elapsedMs": round(1000 * (time.perf_counter() - started)),
            },
        )
        return Outcome(rules, "rules", None, 0.0, failure=why)
    diagnosis, engine, rejected = merge(rules, answer)
    if rejected is not None:
        log.info("LLM opinion not taken", extra={"model": config.model, "reason": rejected})
    return Outcome(diagnosis, engine, config.model, cost, failure=rejected)
