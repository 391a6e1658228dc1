"""Loopback networking helpers: free ports and bounded waits for a listener."""

from __future__ import annotations

import asyncio
import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, *, timeout_s: float, host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on ``port``; raise ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.1f}s")


async def async_wait_for_port(port: int, *, timeout_s: float, host: str = "127.0.0.1") -> None:
    await asyncio.to_thread(wait_for_port, port, timeout_s=timeout_s, host=host)
