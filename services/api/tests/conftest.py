"""Fakes of the api's outbound ports: ``Commands`` (``sent``) and the notifier's dead letters (``letters``).

``sent`` records what the routes sent and answers it as the planner usually does (an approval or
rejection takes effect, a request waits for one approval); a test makes it refuse, or stay silent
(no verdict in time). The real planner answers in ``test_verdicts.py``. ``letters`` keeps what the
notifier dead-letters (the bus side: ``tests/integration/test_notify.py``). ``keys`` is a real key
file with one principal per role; ``serve`` serves an ASGI app with uvicorn on a free loopback port.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serving import serving

from sentinai.api.keys import KeyStore
from sentinai.common.decisions import (
    ActionCommand,
    ActionRequested,
    ActionVerdict,
    VerdictCode,
    VerdictKind,
    requested_action_id,
)

Sent = ActionCommand | ActionRequested
Answer = Callable[[Sent], ActionVerdict | None]


def verdict(
    sent: Sent, *, code: VerdictCode = "ok", status: str | None = None, reason: str = ""
) -> ActionVerdict:
    """The planner's verdict on ``sent``: accepted when ``code`` is ok."""
    kind: VerdictKind
    approvals: tuple[str, ...] = ()
    if isinstance(sent, ActionCommand):
        action_id, kind, approvals = sent.action_id, sent.command, (sent.by,)
        usual = "approved" if sent.command == "approve" else "rejected"
    else:
        action_id, kind = requested_action_id(sent), "request"
        usual = "pending_approval"
    return ActionVerdict(
        chain_id=sent.chain_id,
        answers=sent.event_id,
        action_id=action_id,
        kind=kind,
        accepted=code == "ok",
        code=code,
        status=status or usual,
        reason=reason or f"{kind} {'accepted' if code == 'ok' else 'refused'}",
        approvals=approvals if code == "ok" else (),
        approvals_required=1,
    )


class RecordingCommands:
    def __init__(self) -> None:
        self.commands: list[ActionCommand] = []
        self.requests: list[ActionRequested] = []
        self.answer: Answer = verdict

    async def command(self, cmd: ActionCommand) -> ActionVerdict | None:
        self.commands.append(cmd)
        return self.answer(cmd)

    async def request(self, req: ActionRequested) -> ActionVerdict | None:
        self.requests.append(req)
        return self.answer(req)

    def refuse(self, code: VerdictCode, reason: str, *, status: str = "waiting") -> None:
        """From now on the planner refuses everything with ``code`` and ``reason``."""
        self.answer = lambda sent: verdict(sent, code=code, status=status, reason=reason)

    def stay_silent(self) -> None:
        """From now on the planner does not answer in time."""
        self.answer = lambda sent: None


@pytest.fixture
def sent() -> RecordingCommands:
    return RecordingCommands()


@dataclass(frozen=True)
class Letter:
    subject: str
    body: bytes
    reason: str
    kind: str


class DeadLetterBox:
    """The notifier's dead-letter port, keeping what it is sent."""

    def __init__(self) -> None:
        self.letters: list[Letter] = []

    async def send(self, *, subject: str, body: bytes, reason: str, kind: str = "malformed") -> None:
        self.letters.append(Letter(subject, body, reason, kind))


@pytest.fixture
def letters() -> DeadLetterBox:
    return DeadLetterBox()


class Keys:
    """A real key file with one key per role (plus a revoked one), and the tokens handed out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = KeyStore(path)
        self.tokens: dict[str, str] = {}
        for name, role in [
            ("alice", "approver"),
            ("bob", "operator"),
            ("carol", "viewer"),
            ("dave", "approver"),
        ]:
            _, self.tokens[name] = self.store.add(name, role)  # type: ignore[arg-type]
        self.store.revoke("dave")

    def of(self, name: str) -> dict[str, str]:
        """The headers of ``name``'s key."""
        return {"x-api-key": self.tokens[name]}


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "api-keys.json")


@pytest.fixture
def serve() -> Callable[[Any], AbstractContextManager[str]]:
    return lambda app: serving(app, lifespan="on")
