"""A tick's working copies: the printer collecting its log lines and the mutable scratch the phases of
``step`` update before it is frozen into the next ``ChainState``."""

from __future__ import annotations

from dataclasses import dataclass

from sentinai.twin import logs
from sentinai.twin.incidents import Effects
from sentinai.twin.logs import Level, Value
from sentinai.twin.model import Block, ChainState, Component, LogLine, Pod


class Printer:
    """Collects a tick's log lines, each a few milliseconds after the previous one."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.lines: list[LogLine] = []

    def _at(self) -> float:
        return self.now + 0.003 + 0.007 * len(self.lines)

    def geth(self, level: Level, msg: str, **fields: Value) -> None:
        self.lines.append(LogLine("op-geth", logs.geth(level, self._at(), msg, **fields)))

    def op(self, component: Component, level: Level, msg: str, **fields: Value) -> None:
        self.lines.append(LogLine(component, logs.logfmt(level, self._at(), msg, **fields)))


@dataclass
class Tick:
    """Mutable scratch for one step; frozen into the next ChainState at the end."""

    state: ChainState
    fx: Effects
    out: Printer
    pods: dict[Component, Pod]
    blocks: list[Block]
    pending: int
    l1_head: int
    l1_head_ts: int
