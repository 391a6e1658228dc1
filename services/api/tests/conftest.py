"""A fake of the api's one outbound port (``Commands``) that records what the routes sent."""

from __future__ import annotations

import pytest

from sentinai.common.decisions import ActionCommand, ActionRequested


class RecordingCommands:
    def __init__(self) -> None:
        self.commands: list[ActionCommand] = []
        self.requests: list[ActionRequested] = []

    async def command(self, cmd: ActionCommand) -> None:
        self.commands.append(cmd)

    async def request(self, req: ActionRequested) -> None:
        self.requests.append(req)


@pytest.fixture
def sent() -> RecordingCommands:
    return RecordingCommands()
