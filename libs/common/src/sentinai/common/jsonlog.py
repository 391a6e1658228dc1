"""The one JSON logging setup: every line carries service, chain and correlation id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from sentinai.common.settings import LogLevel

_chain: contextvars.ContextVar[str | None] = contextvars.ContextVar("sentinai_chain", default=None)
_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sentinai_correlation", default=None
)

_LEVELS: dict[LogLevel, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}
# uvicorn adds an ANSI-coloured copy of each message; one copy is enough.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def bind(*, chain: str | None = None, correlation_id: str | None = None) -> None:
    """Attach chain and correlation id to every log line of the current task."""
    _chain.set(chain)
    _correlation.set(correlation_id)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": _NAMES.get(record.levelno, "critical" if record.levelno > logging.ERROR else "debug"),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "chain": getattr(record, "chain", None) or _chain.get(),
            "correlationId": getattr(record, "correlation_id", None) or _correlation.get(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in {"chain", "correlation_id"}:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(service: str, level: LogLevel = "info") -> None:
    """Route every logger of the process to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # Library chatter at info level drowns the service's own lines.
    for noisy in ("nats", "faststream", "httpx", "kubernetes", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(_LEVELS[level], logging.WARNING))
