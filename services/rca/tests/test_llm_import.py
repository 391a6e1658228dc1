"""litellm costs seconds to import: only a configured model pays for it, and never inside a deadline.

Each test runs a fresh interpreter, the only way to see a cold import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def run(script: str, *, timeout_s: float = 120) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_rca_starts_without_importing_litellm() -> None:
    report = run(
        """
import json, sys, threading
from sentinai.rca import bus, llm, main
from sentinai.rca.settings import RcaSettings
settings = RcaSettings()
main.build_app(settings)
configured = llm.config_from(RcaSettings(llm_model="openai/some-model"))
print(json.dumps({
    "litellm": sorted(m for m in sys.modules if m == "litellm" or m.startswith("litellm.")),
    "threads": sorted(t.name for t in threading.enumerate()),
    "configured": configured is not None,
}))
"""
    )
    assert report["litellm"] == []
    assert "sentinai-rca-llm" not in report["threads"]
    assert report["configured"]


def test_a_cold_client_still_answers_within_the_deadline() -> None:
    """The first diagnosis after a start, with the model configured: litellm is still loading."""
    report = run(
        """
import asyncio, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from sentinai.common.net import free_port
from sentinai.rca import llm, logic
from sentinai.rca.settings import RcaSettings
from services.rca.tests import scenes

class Agrees(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        content = json.dumps({"rootCauseClass": "sequencer_stall", "rootCause": "the head is flat",
                              "confidence": 1.0})
        data = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": content}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", free_port()), Agrees)
threading.Thread(target=server.serve_forever, daemon=True).start()
settings = RcaSettings(llm_model="openai/fake", llm_api_base=f"http://127.0.0.1:{server.server_address[1]}/v1",
                       llm_api_key="sk-test")
config = llm.config_from(settings)
ctx = scenes.sequencer_stall()
rules = logic.diagnose(ctx)

async def timed():
    started = time.monotonic()
    outcome = await llm.consult(ctx, rules, config=config)
    return {"elapsed": time.monotonic() - started, "engine": outcome.engine, "failure": outcome.failure,
            "same": outcome.diagnosis == rules}

cold = asyncio.run(timed())
llm.preload().result(timeout=120)
asyncio.run(timed())  # litellm's first call builds its HTTP client
warm = asyncio.run(timed())
print(json.dumps({"cold": cold, "warm": warm}))
"""
    )
    cold, warm = report["cold"], report["warm"]
    assert cold["elapsed"] < 2.0, cold
    assert (cold["engine"], cold["same"]) == ("rules", True)
    assert "still loading" in cold["failure"]
    assert warm["elapsed"] < 2.0, warm
    assert (warm["engine"], warm["failure"]) == ("both", None)
