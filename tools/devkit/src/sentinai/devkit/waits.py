"""Polled waits for tests and benchmarks: a condition checked until it holds, never a bare sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float,
    what: str,
    every_s: float = ...,
    tolerate: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    every_s: float = ...,
    tolerate: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    timeout_s: float,
    what: str,
    every_s: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """The first truthy result of ``check`` (sync or async), polled every ``every_s``.

    Fails naming ``what`` and the last result after ``timeout_s``. Exceptions of the ``tolerate``
    types (a server still starting) count as "not yet".
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            answer = check()
            last = await answer if inspect.isawaitable(answer) else answer
            if last:
                return last
        except tolerate as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g}s (last: {last!r})")
        await asyncio.sleep(every_s)


def eventually_sync(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    every_s: float = 0.2,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """``eventually`` for code without an event loop (a test driving a stack over HTTP)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last
        except tolerate as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g}s (last: {last!r})")
        time.sleep(every_s)  # a poll interval, the condition is checked again right after
