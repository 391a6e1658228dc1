"""Running a service's ASGI app (its health and metrics routes around the broker) the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn
import uvloop
from faststream.asgi import AsgiResponse
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from prometheus_client import make_asgi_app

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop, as uvicorn runs the ASGI services: a service whose own loop polls,
    publishes and waits all day spends less of its CPU in the event loop's Python machinery."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_asgi(app: Any, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then shut down gracefully within 5 s.

    Our JSON logger is already installed, so uvicorn must not configure its own, and access lines
    would only repeat every probe.
    """
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def health_and_metrics(healthy: Callable[[], Awaitable[bool]]) -> ASGIApp:
    """``/healthz`` (200 or 503 from ``healthy``) and ``/metrics``, for a service with its own main loop."""
    metrics = make_asgi_app()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start
        if scope["path"] == "/metrics":
            await metrics(scope, receive, send)
        elif scope["path"] == "/healthz":
            ok = await healthy()
            await AsgiResponse(b"ok" if ok else b"unhealthy", 200 if ok else 503)(scope, receive, send)
        else:
            await AsgiResponse(b"not found", 404)(scope, receive, send)

    return app


class _Embedded(uvicorn.Server):
    """A server that leaves signal handling to the service it runs inside."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, host: str, port: int) -> AsyncIterator[None]:
    """Serve ``app`` in the background while the block runs; a port in use fails here, at once."""
    sock = socket.create_server((host, port))
    config = uvicorn.Config(
        app, http="httptools", log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    server = _Embedded(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    try:
        yield
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            sock.close()
