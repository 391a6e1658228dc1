"""An ASGI app served by uvicorn on a free loopback port, in a thread, for tests that need real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

from sentinai.common.net import free_port


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
    deadline = time.monotonic() + timeout_s
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)
