"""Shared by the hostile-input tests: services started as real processes, their metrics, the bus read back."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, ``>`` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def filters(info: ConsumerInfo) -> list[str]:
    config = info.config
    found = list(config.filter_subjects or [])
    if config.filter_subject:
        found.append(config.filter_subject)
    return found or [">"]


async def consumers_of(js: JetStreamContext, stream: str, subject: str) -> list[ConsumerInfo]:
    """Every consumer of ``stream`` that receives ``subject``."""
    infos = await js.consumers_info(stream)
    return [i for i in infos if any(subject_matches(f, subject) for f in filters(i))]


async def read_stream(js: JetStreamContext, stream: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every message the stream holds, oldest first: subject, body and headers."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    found: list[tuple[str, bytes, dict[str, str]]] = []
    if not info.state.messages:
        return found
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        found.append((msg.subject or "", msg.data or b"", dict(msg.headers or {})))
    return found
