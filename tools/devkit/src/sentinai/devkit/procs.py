"""Stopping a child process we started in its own session: politely first, then for sure."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen[bytes] | None, *, timeout_s: float = 10.0) -> None:
    """SIGTERM ``process``; if it is still there after ``timeout_s``, SIGKILL its whole group."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)
