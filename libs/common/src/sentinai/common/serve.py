"""Running a service's ASGI app (its health and metrics routes around the broker) the same way everywhere."""

from __future__ import annotations

from typing import Any

import uvicorn


def run_asgi(app: Any, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then shut down gracefully within 5 s.

    Our JSON logger is already installed, so uvicorn must not configure its own, and access lines
    would only repeat every probe.
    """
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=5)
