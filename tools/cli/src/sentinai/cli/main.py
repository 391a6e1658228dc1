"""The `sentinai` command: `up`, `twin inject|clear|state`, `status`, `actions`, `audit`, `keys`, …"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import httpx

from sentinai.cli import actions as action_commands
from sentinai.cli import asyncapi as asyncapi_command
from sentinai.cli import catalogue as catalogue_command
from sentinai.cli import keys as key_commands
from sentinai.cli import mcp as mcp_command
from sentinai.cli import natsusers as nats_users_command
from sentinai.cli import stack
from sentinai.cli.supervisor import ChildFailedError, Supervisor
from sentinai.common.net import async_wait_for_port, free_port
from sentinai.twin.client import TwinControl

STARTUP_TIMEOUT_S = 60.0


async def _wait_for_file(path: Path, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s:.0f}s")
        await asyncio.sleep(0.1)


async def up(settings: stack.UpSettings) -> int:
    state = settings.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    sup = Supervisor()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.request_stop)
    runtime_path = stack.runtime_file(state)
    try:
        nats_url = settings.nats_url
        if nats_url is None:
            port = free_port()
            await sup.start(stack.nats_child(port=port, data_dir=state / "nats"))
            await async_wait_for_port(port, timeout_s=STARTUP_TIMEOUT_S)
            nats_url = f"nats://127.0.0.1:{port}"
        sup.say("sentinai", f"NATS JetStream at {nats_url}")

        twin_url = None
        chains_file = settings.chains_file
        poll_s = 30.0
        if chains_file is None:
            twin_dir = state / "twin"
            (twin_dir / "chains.yaml").unlink(missing_ok=True)
            port = free_port()
            await sup.start(stack.twin_child(settings, port=port, twin_dir=twin_dir))
            chains_file = twin_dir / "chains.yaml"
            await _wait_for_file(chains_file, timeout_s=STARTUP_TIMEOUT_S)
            await async_wait_for_port(port, timeout_s=STARTUP_TIMEOUT_S)
            twin_url = f"http://127.0.0.1:{port}"
            poll_s = settings.twin_poll_interval_s
            sup.say("sentinai", f"OP Stack twin at {twin_url} (chains: {settings.twin_chains})")

        api_key = stack.ensure_api_key(settings)
        for child in stack.service_children(
            settings, nats_url=nats_url, chains_file=chains_file, poll_s=poll_s, api_key=api_key
        ):
            await sup.start(child)
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        stack.Runtime(nats_url=nats_url, api_url=api_url, twin_url=twin_url).save(runtime_path)
        sup.say("sentinai", f"dashboard at {api_url}/ — API docs at {api_url}/docs — Ctrl-C stops everything")
        key_source = "SENTINAI_API_KEY" if settings.api_key else str(stack.api_key_file(state))
        # Where the key is, never the key: this line ends up in terminals, CI logs and bug reports.
        sup.say("sentinai", f"API key for approvals: {stack.masked(api_key)} (from {key_source})")
        await sup.wait()
    except (TimeoutError, ChildFailedError) as exc:
        sup.say("sentinai", f"startup failed: {exc}")
        return 1
    finally:
        sup.say("sentinai", "shutting down")
        await sup.stop()
        runtime_path.unlink(missing_ok=True)
    return 0


def _runtime(args: argparse.Namespace) -> stack.Runtime:
    runtime = stack.Runtime.load(stack.runtime_file(Path(args.state_dir)))
    if runtime is None:
        raise SystemExit(f"no running stack found in {args.state_dir} (start one with `sentinai up`)")
    return runtime


def _twin(args: argparse.Namespace) -> TwinControl:
    url = args.twin_url or _runtime(args).twin_url
    if url is None:
        raise SystemExit("the running stack has no twin (it watches real chains)")
    return TwinControl(url)


def _param(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as JSON when it is JSON (numbers, booleans), else text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--param wants KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def twin_command(args: argparse.Namespace) -> int:
    control = _twin(args)
    result: object
    try:
        if args.twin_action == "inject":
            params = dict(_param(p) for p in args.param)
            result = control.inject(args.chain, args.kind, params or None)
            print(f"injected {args.kind} on {args.chain}")
        elif args.twin_action == "clear":
            result = control.clear(args.chain, args.kind)
            print(f"cleared {', '.join(result) or 'nothing (no incident was active)'} on {args.chain}")
        else:
            result = control.state(args.chain)
        if args.json or args.twin_action == "state":
            print(json.dumps(result, indent=2))
    except httpx.HTTPStatusError as exc:
        print(f"twin refused: {exc.response.status_code} {exc.response.text}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"twin unreachable: {exc}", file=sys.stderr)
        return 3
    return 0


def status_command(args: argparse.Namespace) -> int:
    api_url = args.api_url or _runtime(args).api_url
    try:
        response = httpx.get(f"{api_url}/api/health", timeout=5.0)
    except httpx.HTTPError as exc:
        print(f"api unreachable at {api_url}: {exc}", file=sys.stderr)
        return 3
    health = response.json()
    print(f"status: {health['status']}   nats connected: {health['nats']['connected']}")
    for chain in health["chains"]:
        print(
            f"  {chain['chainId']:<16} fresh={chain['fresh']} age={chain['ageS']}s "
            f"l2={chain['l2Reachable']} op-node={chain['opNodeReachable']} k8s={chain['k8sReachable']}"
        )
    return 0 if health["status"] == "ok" else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="sentinai", description="SentinAI: autonomous operations for OP Stack L2s"
    )
    root.add_argument("--state-dir", default=str(stack.UpSettings().state_dir), help="runtime state folder")
    sub = root.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start NATS, the OP Stack twin and every service; Ctrl-C stops all")
    up_parser.add_argument(
        "--collector-shards",
        type=_process_count,
        help="collector processes sharing the chains (SENTINAI_COLLECTOR_SHARDS)",
    )
    up_parser.add_argument(
        "--detector-partitions",
        type=_process_count,
        help="detector processes sharing the bus by partition (SENTINAI_DETECTOR_PARTITIONS)",
    )
    twin = sub.add_parser("twin", help="drive the OP Stack twin")
    twin.add_argument("--twin-url", help="twin base URL (default: the one `sentinai up` started)")
    twin.add_argument("--json", action="store_true", help="print the twin's answer")
    actions = twin.add_subparsers(dest="twin_action", required=True)
    inject = actions.add_parser("inject", help="inject an incident")
    inject.add_argument("kind", help="cpu_spike, txpool_flood, sequencer_stall, l1_rpc_outage, …")
    inject.add_argument("--chain", default="twin")
    inject.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    clear = actions.add_parser("clear", help="clear one incident or all")
    clear.add_argument("kind", nargs="?", default=None)
    clear.add_argument("--chain", default="twin")
    state = actions.add_parser("state", help="show the twin's state for a chain")
    state.add_argument("--chain", default="twin")
    status = sub.add_parser("status", help="health of the running stack")
    status.add_argument("--api-url", help="api base URL (default: the one `sentinai up` started)")
    action_commands.add_parsers(sub)
    key_commands.add_parser(sub)
    mcp_command.add_parser(sub)
    nats_users_command.add_parser(sub)
    asyncapi_command.add_parser(sub)
    catalogue_command.add_parser(sub)
    return root


def up_settings(args: argparse.Namespace) -> stack.UpSettings:
    settings = stack.UpSettings()
    flags = {"collector_shards": args.collector_shards, "detector_partitions": args.detector_partitions}
    return settings.model_copy(update={key: value for key, value in flags.items() if value is not None})


def _process_count(text: str) -> int:
    """1..64 processes, the range ``UpSettings`` accepts from the environment."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"expected a process count from 1 to 64, got {text!r}")
    return count


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "up":
        return asyncio.run(up(up_settings(args)))
    if args.command == "twin":
        return twin_command(args)
    if args.command in ("actions", "audit"):
        return action_commands.main(args)
    if args.command == "keys":
        return key_commands.command(args)
    if args.command == "nats-users":
        return nats_users_command.command(args)
    if args.command == "mcp":
        return mcp_command.main(args)
    if args.command == "asyncapi":
        return asyncapi_command.command(args)
    if args.command == "catalogue":
        return catalogue_command.command(args)
    return status_command(args)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
