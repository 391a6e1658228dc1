"""The optional LLM opinion through litellm: one hard deadline, schema check, merge with the rules.

The model never decides what happens. The published class, confidence, risk, affected components,
action plan and corroboration are always the rules'; the model may re-rank the classes the rules
support (for display) and, when it agrees with the rules, word the root cause. Every failure, and
every answer later than ``LlmConfig.deadline_s``, leaves the rules' answer as it was.

litellm takes seconds to import, and more on its first call; neither may delay a diagnosis, and a
service without a model must not pay for it. So litellm is imported only once a model is configured,
and imported and called on one worker thread with its own event loop: whatever it does there
(importing, parsing a huge body, waiting on a server that never answers), the service's loop gives
up on it at the deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import importlib
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from sentinai.common.decisions import Hypothesis, RcaEngine
from sentinai.common.incidents import MARKERS, RootCauseClass
from sentinai.rca.logic import UNKNOWN_BELOW
from sentinai.rca.model import Diagnosis, RcaContext
from sentinai.rca.prompt import build_messages, printable, supported
from sentinai.rca.settings import RcaSettings

log = logging.getLogger(__name__)
# litellm fetches its model cost map from the internet at import unless told not to; an RCA must never
# hang on a network it may not have. Set here, not just before our import: whatever imports it later
# in this process is covered too.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# From the rules' answer to the published RCA, whatever the model does.
DEFAULT_DEADLINE_S: Final = 1.5
NARRATIVE_MAX: Final = 400  # characters of the model's root cause shown when it agrees
REASON_MAX: Final = 160  # characters of its reason shown when it prefers another class
ANSWER_MAX: Final = 16_000  # characters of content parsed at all (max_tokens bounds an honest model)


class LlmAnswer(BaseModel):
    """The JSON the model must return; anything else is a failure. Other fields are ignored."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")

    root_cause_class: RootCauseClass
    root_cause: str = Field(min_length=1, max_length=4000)
    confidence: float = Field(ge=0, le=1)


@dataclass(frozen=True, slots=True)
class LlmConfig:
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    max_tokens: int = 800
    deadline_s: float = DEFAULT_DEADLINE_S

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, not {self.deadline_s}")


def config_from(settings: RcaSettings) -> LlmConfig | None:
    """The LLM's config from the settings; None (rules only) when no model is configured."""
    if settings.llm_model is None:
        return None
    return LlmConfig(
        model=settings.llm_model,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        max_tokens=settings.llm_max_tokens,
        deadline_s=settings.llm_deadline_s,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the RCA publishes: the diagnosis, which engine stands behind it, and what the LLM cost."""

    diagnosis: Diagnosis
    engine: RcaEngine
    model: str | None
    cost_usd: float
    # Why the model's word was not (fully) taken, or not asked for: the audit trail's llmRefused.
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Merged:
    diagnosis: Diagnosis
    engine: RcaEngine
    note: str | None = None


class LlmFailureError(RuntimeError):
    """The model's answer could not be used (HTTP error, bad JSON, schema, size)."""


# ----------------------------------------------------------------------------------- parse, merge


def parse_answer(text: str) -> LlmAnswer:
    """The model's JSON (a ```json fence tolerated), validated; raises ``LlmFailureError``."""
    if len(text) > ANSWER_MAX:
        raise LlmFailureError(f"answer too long: {len(text)} characters")
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        return LlmAnswer.model_validate_json(stripped)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise LlmFailureError(f"answer does not fit the schema: {where}: {first['msg']}") from exc


def bounded(text: str, limit: int) -> str:
    """One printable line of at most ``limit`` characters, cut at a word."""
    line = " ".join(printable(text).split())
    if len(line) <= limit:
        return line
    return line[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


# The log markers of the catalogue, matched regardless of case: what a reader of the diagnosis's text
# (the planner picks a remedy's variant by such words) could take as evidence.
_MARKERS: Final = tuple(
    re.compile(pattern, re.IGNORECASE) for pattern in dict.fromkeys(m.pattern.pattern for m in MARKERS)
)


def _cited(diagnosis: Diagnosis) -> frozenset[int]:
    """Which markers the texts describing ``diagnosis``'s class quote."""
    texts = [diagnosis.root_cause, diagnosis.action_plan, *diagnosis.evidence]
    for h in diagnosis.hypotheses:
        if h.cause == diagnosis.root_cause_class:
            texts += [h.summary, *h.evidence]
    return frozenset(i for i, marker in enumerate(_MARKERS) if any(marker.search(t) for t in texts))


def _first(hypotheses: Sequence[Hypothesis], cause: str) -> tuple[Hypothesis, ...]:
    return (*(h for h in hypotheses if h.cause == cause), *(h for h in hypotheses if h.cause != cause))


def merge(rules: Diagnosis, answer: LlmAnswer, *, floor: float = UNKNOWN_BELOW) -> Merged:
    """The rules' diagnosis with the model's words where they may go; pure.

    Class, confidence, risk, affected components, action plan, evidence and corroboration stay the
    rules'. Agreeing, the model words the root cause (engine ``both``). Preferring another class the
    rules support, it is put first among the hypotheses and the root cause says so. Anything else is
    recorded in the note only. Text that would quote a log marker the rules' grounds for their class
    do not is not used: a reader could take it as evidence the rules never saw.
    """
    said = f"{answer.root_cause_class} (confidence {answer.confidence:.2f})"
    mine = rules.root_cause_class
    if mine == "unknown":
        return Merged(
            rules, "rules", f"the rules' evidence supports no class; the model's {said} is not used"
        )
    if answer.root_cause_class == mine:
        narrative = bounded(answer.root_cause, NARRATIVE_MAX)
        worded = replace(rules, root_cause=narrative)
        if not narrative:
            return Merged(rules, "rules", "the model agreed but its root cause is empty")
        if _cited(worded) != _cited(rules):
            return Merged(
                rules, "rules", "the model agreed, but its root cause quotes evidence the rules did not see"
            )
        return Merged(worded, "both")
    if answer.root_cause_class == "unknown":
        return Merged(rules, "rules", f"the model finds the evidence inconclusive; the rules' {mine} stands")
    if answer.root_cause_class not in supported(rules, floor=floor):
        return Merged(
            rules,
            "rules",
            f"the model chose {said}, which the rules' evidence does not support; {mine} stands",
        )
    reason = bounded(answer.root_cause, REASON_MAX)
    prefers = f"{rules.root_cause}; the model prefers {answer.root_cause_class}"
    ranked = _first(rules.hypotheses, answer.root_cause_class)
    shown = replace(rules, root_cause=f"{prefers}: {reason}" if reason else prefers, hypotheses=ranked)
    if _cited(shown) != _cited(rules):
        shown = replace(rules, root_cause=prefers, hypotheses=ranked)
    return Merged(shown, "rules", f"the model prefers {said}: {reason}; the rules' {mine} stands")


# ------------------------------------------------------------------------------------------- call


class _Worker:
    """One daemon thread with its own event loop, where litellm is imported and every call runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loaded = threading.Event()
        threading.Thread(target=self.loop.run_forever, name="sentinai-rca-llm", daemon=True).start()
        self.warm = asyncio.run_coroutine_threadsafe(self._load(), self.loop)

    async def _load(self) -> None:
        _litellm()
        # litellm and the OpenAI SDK bring hundreds of thousands of objects that live as long as the
        # process. A full collection walked them all, ~1 s with every thread stopped (the service's
        # loop too, past the deadline); frozen, collections skip them.
        gc.freeze()
        self.loaded.set()


_started: list[_Worker] = []
_starting = threading.Lock()


def _the_worker() -> _Worker:
    """The one worker of the process, started on first use."""
    with _starting:
        if not _started:
            _started.append(_Worker())
        return _started[0]


def preload() -> concurrent.futures.Future[None]:
    """Start importing litellm in the background; done when it can be called. Idempotent.

    A service with a model configured calls this at start-up, so its first diagnosis does not spend
    its deadline waiting for the import.
    """
    return _the_worker().warm


def _litellm() -> Any:
    """litellm, imported on the worker thread (a blocking import there delays no diagnosis)."""
    lib: Any = importlib.import_module("litellm")
    # Its "Give Feedback / Get Help" banners go to stdout, which must stay JSON log lines.
    lib.suppress_debug_info = True
    # litellm imports the OpenAI SDK's resources on its first call, ~1.5 s: do it here instead.
    with contextlib.suppress(ImportError):
        importlib.import_module("openai.resources")
    return lib


def _cost(lib: Any, response: Any) -> float:
    try:
        return float(lib.completion_cost(completion_response=response) or 0.0)
    except Exception:  # a model missing from the local cost map has no price, which is not an error
        return 0.0


def _supports_json_mode(lib: Any, model: str) -> bool:
    try:
        params = lib.get_supported_openai_params(model=model) or []
    except Exception:
        return False
    return "response_format" in params


async def _ask(messages: list[dict[str, str]], *, config: LlmConfig) -> tuple[LlmAnswer, float]:
    """On the worker's loop: one call, no retries, its answer parsed."""
    lib = _litellm()
    extra: dict[str, Any] = {}
    if _supports_json_mode(lib, config.model):
        extra["response_format"] = {"type": "json_object"}
    try:
        response = await lib.acompletion(
            model=config.model,
            api_base=config.api_base,
            api_key=config.api_key,
            messages=messages,
            # The caller gives up at the deadline anyway; this lets the worker give up too.
            timeout=config.deadline_s,
            max_tokens=config.max_tokens,
            temperature=0,
            num_retries=0,
            max_retries=0,
            **extra,
        )
    except Exception as exc:
        raise LlmFailureError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError) as exc:
        raise LlmFailureError("response has no message content") from exc
    if not isinstance(content, str):
        raise LlmFailureError("response has no message content")
    return parse_answer(content), _cost(lib, response)


async def consult(ctx: RcaContext, rules: Diagnosis, *, config: LlmConfig) -> Outcome:
    """Ask the model, merge its opinion into the rules' answer; returns within ``config.deadline_s``.

    The rules' "unknown" is published as it is, so the model is not asked then.
    """
    if rules.root_cause_class == "unknown":
        return Outcome(rules, "rules", None, 0.0, failure="not asked: the rules' evidence supports no class")
    started = time.monotonic()
    worker = _the_worker()
    pending: concurrent.futures.Future[tuple[LlmAnswer, float]] | None = None
    try:
        async with asyncio.timeout(config.deadline_s):
            pending = asyncio.run_coroutine_threadsafe(
                _ask(build_messages(ctx, rules), config=config), worker.loop
            )
            answer, cost = await asyncio.wrap_future(pending)
    except Exception as exc:  # whatever went wrong, the rules' answer goes out: logged and audited
        if pending is not None:
            pending.cancel()  # the worker's task stops too: no late answer, no open connection
        if isinstance(exc, TimeoutError):
            why = f"no answer within the {config.deadline_s:g} s deadline"
        elif isinstance(exc, LlmFailureError):
            why = str(exc)
        else:
            why = f"{type(exc).__name__}: {str(exc)[:300]}"
        if not worker.loaded.is_set():
            why += " (the LLM client was still loading)"
        log.warning(
            "LLM answer unusable, using the rules' diagnosis",
            extra={
                "model": config.model,
                "reason": why,
                "elapsedMs": round(1000 * (time.monotonic() - started)),
            },
        )
        return Outcome(rules, "rules", None, 0.0, failure=why)
    merged = merge(rules, answer)
    if merged.note is not None:
        log.info("LLM opinion not taken", extra={"model": config.model, "reason": merged.note})
    return Outcome(merged.diagnosis, merged.engine, config.model, cost, failure=merged.note)
