"""`sentinai mcp`: SentinAI's MCP tools over stdio, for Claude Desktop, Claude Code and other agents.

The tools call the running api's REST API (the same ``RestBackend`` the api's own ``/mcp`` uses).
stdout carries the MCP protocol and nothing else; every log line goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinai.cli import stack
from sentinai.common import jsonlog
from sentinai.common.settings import LogLevel

log = logging.getLogger("sentinai.cli.mcp")


class McpSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    api_url: str | None = Field(default=None, validation_alias=AliasChoices("SENTINAI_API_URL"))
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SENTINAI_API_KEY"))
    log_level: LogLevel = Field(default="warn", validation_alias=AliasChoices("SENTINAI_LOG_LEVEL"))


def api_url(state_dir: Path, *, flag: str | None, settings: McpSettings) -> str | None:
    """``--api-url``, else ``SENTINAI_API_URL``, else the running stack's (``<state>/up.json``)."""
    if flag or settings.api_url:
        return flag or settings.api_url
    runtime = stack.Runtime.load(stack.runtime_file(state_dir))
    return runtime.api_url if runtime is not None else None


def api_key(state_dir: Path, *, settings: McpSettings) -> str | None:
    """``SENTINAI_API_KEY``, else the key `sentinai up` wrote to ``<state>/api-key``."""
    if settings.api_key is not None and settings.api_key.get_secret_value():
        return settings.api_key.get_secret_value()
    try:
        return stack.api_key_file(state_dir).read_text().strip() or None
    except OSError:
        return None


async def serve(url: str, *, key: str | None) -> None:
    # Imported here: the MCP SDK costs every other `sentinai` command half a second at start.
    from sentinai.api.mcp import RestBackend, build_mcp_server  # noqa: PLC0415

    backend = RestBackend.connect(url, api_key=key)
    try:
        await build_mcp_server(backend).run_stdio_async()
    finally:
        await backend.aclose()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("mcp", help="serve SentinAI's MCP tools over stdio (for AI agents)")
    parser.add_argument(
        "--api-url", help="api base URL (default: SENTINAI_API_URL, else the running stack's)"
    )


def main(args: argparse.Namespace) -> int:
    settings = McpSettings()
    # Before the MCP server exists: it would otherwise install its own root handler.
    jsonlog.setup("mcp", settings.log_level)
    state_dir = Path(args.state_dir)
    url = api_url(state_dir, flag=args.api_url, settings=settings)
    if url is None:
        log.error("no api URL: pass --api-url, set SENTINAI_API_URL, or start the stack with `sentinai up`")
        return 2
    key = api_key(state_dir, settings=settings)
    if key is None:
        log.warning("no API key (SENTINAI_API_KEY or %s): sentinai.executeAction will be refused", state_dir)
    log.info("serving MCP over stdio for %s", url)
    asyncio.run(serve(url, key=key))
    return 0
