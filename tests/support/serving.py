"""An ASGI app served by uvicorn on a free loopback port, in a thread, for tests that need real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

from sentinai.common.net import free_port
from sentinai.devkit.waits import eventually_sync


@contextmanager
def serving(
    app: Any,
    *,
    host: str = "127.0.0.1",
    lifespan: Literal["auto", "on", "off"] = "auto",
    graceful_s: int | None = None,
    timeout_s: float = 20.0,
) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL. ``graceful_s`` bounds the shutdown
    (a dashboard holds an SSE stream open, which shutdown must not wait for)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=graceful_s,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "uvicorn did not start"
        return server.started

    eventually_sync(started, timeout_s=timeout_s, what="uvicorn started", every_s=0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
