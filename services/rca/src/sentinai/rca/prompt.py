"""The prompt the optional LLM is asked with: the rules' answer and the chain's data, untrusted text fenced.

Log lines and anomaly descriptions are data whoever controls a log line or an RPC answer can write:
they appear only inside a fenced block whose fence derives from the data, and the rules' evidence
that quotes them points there instead of repeating them. The wording is ``prompts/rca.md``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from decimal import Decimal
from importlib import resources
from string import Template
from typing import Final

from sentinai.common.events import AnomalyDetected
from sentinai.common.incidents import RootCauseClass
from sentinai.rca.evidence import Facts, quote
from sentinai.rca.logic import UNKNOWN_BELOW
from sentinai.rca.model import Diagnosis, RcaContext

_VALUES_SHOWN: Final = 10
_SIGNIFICANT: Final = 10  # digits of a non-integer metric value in the prompt
_USER_MARK: Final = "<!-- user -->"


def _template() -> tuple[Template, Template]:
    text = resources.files("sentinai.rca").joinpath("prompts/rca.md").read_text(encoding="utf-8")
    system, user = text.split(_USER_MARK, 1)
    return Template(system.strip()), Template(user.strip())


def printable(text: str) -> str:
    """Control characters could fake a new line or hide text from an operator."""
    return "".join(c if c.isprintable() else " " for c in text)


def _clean(line: str) -> str:
    """One printable line of data for the prompt."""
    return printable(line)[:500]


def exact(value: float) -> str:
    """A metric value for the model: integers in full (a block height is 4425620, not 4.42562e+06),
    other values to ``_SIGNIFICANT`` digits and never in exponent notation."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value):
        return str(int(value))
    return format(Decimal(f"{value:.{_SIGNIFICANT}g}"), "f")


def supported(rules: Diagnosis, *, floor: float = UNKNOWN_BELOW) -> tuple[RootCauseClass, ...]:
    """The classes the rules found enough evidence for: the only ones the model may put first."""
    return tuple(h.cause for h in rules.hypotheses if h.score >= floor and h.cause != "unknown")


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
        return f"- {a.component} {a.metric}={exact(a.value)} ({a.rule}, {a.severity})"

    metrics = [
        f"- {c} {m}: {', '.join(exact(v) for v in values[-_VALUES_SHOWN:])}"
        for c, ms in sorted(ctx.metrics.items())
        for m, values in sorted(ms.items())
        if values
    ]
    hypotheses = [
        f"- {h.cause} (score {h.score:.2f}): {h.summary}. Evidence: {shown(h.evidence)}"
        for h in rules.hypotheses
    ]
    actions = [f"- {a.action.summary()}: {a.outcome}" for a in ctx.recent_actions]
    choices = supported(rules)
    system, user = _template()
    fields = {
        "supported": ", ".join(f'"{c}"' for c in (*choices, "unknown")),
        "chain": ctx.chain_id,
        "block_time": exact(ctx.block_time_s),
        "rules_answer": f"{rules.root_cause_class} (confidence {rules.confidence:.2f})",
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
