"""Running a service's ASGI app (its health and metrics routes around the broker) the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import uvicorn
import uvloop
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.nats import NatsBroker
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


Hook = Callable[[], Awaitable[None]]


def broker_app(
    broker: NatsBroker,
    *,
    running: Callable[[], bool],
    on_startup: Sequence[Hook],
    after_startup: Sequence[Hook],
    on_shutdown: Sequence[Hook],
    after_shutdown: Sequence[Hook] = (),
) -> AsgiFastStream:
    """A broker service's ASGI app: ``/healthz`` is 200 while its own loops are ``running`` and the
    broker answers a ping within 1 s (else 503), and ``/metrics`` serves Prometheus."""

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        healthy = running() and await broker.ping(timeout=1.0)
        return AsgiResponse(b"ok" if healthy else b"unhealthy", 200 if healthy else 503)

    return AsgiFastStream(
        broker,
        asgi_routes=[("/healthz", healthz), ("/metrics", make_asgi_app())],
        on_startup=list(on_startup),
        after_startup=list(after_startup),
        on_shutdown=list(on_shutdown),
        after_shutdown=list(after_shutdown),
    )


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
