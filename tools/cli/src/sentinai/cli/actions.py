"""`sentinai actions list|approve|reject` and `sentinai audit`: the planner's records, read over NATS.

Reads go straight to the planner's StateStore records; a decision is published as an
``ActionCommand`` on ``action.command.<chain>``, which only the planner consumes and judges.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError

from sentinai.cli import stack
from sentinai.common import streams, subjects
from sentinai.common.decisions import ActionCommand, ActionProposed, AuditRecorded, CommandKind
from sentinai.common.events import utcnow
from sentinai.common.settings import ServiceSettings
from sentinai.common.state import StateStoreError, open_state_store
from sentinai.planner.records import Ledger, Records

TIMEOUT_S = 5.0


class CliError(Exception):
    """A problem the operator can fix; printed without a traceback, with its exit code."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Connection:
    nc: NatsClient
    records: Records


def nats_url(state_dir: Path, settings: ServiceSettings) -> str:
    """The running stack's NATS (``<state>/up.json``), else ``SENTINAI_NATS_URL``."""
    runtime = stack.Runtime.load(stack.runtime_file(state_dir))
    return runtime.nats_url if runtime is not None else settings.nats_url


@asynccontextmanager
async def connect(url: str, settings: ServiceSettings) -> AsyncIterator[Connection]:
    try:
        nc = await nats.connect(
            url, connect_timeout=int(TIMEOUT_S), max_reconnect_attempts=0, allow_reconnect=False
        )
    except (OSError, NatsError, TimeoutError) as exc:
        raise CliError(f"cannot reach NATS at {url}: {exc!r} (is `sentinai up` running?)", code=3) from exc
    try:
        store = await open_state_store(nc=nc, redis_url=settings.redis_url, bucket=settings.kv_bucket)
        try:
            yield Connection(nc, Records(store))
        finally:
            await store.close()
    finally:
        await nc.close()


# ------------------------------------------------------------------------------------------ commands


async def list_actions(conn: Connection, *, include_all: bool, out: TextIO, now: datetime) -> int:
    ids = await (conn.records.all_ids() if include_all else conn.records.pending_ids())
    rows: list[tuple[ActionProposed, Ledger]] = []
    for action_id in ids:
        proposal = await conn.records.proposal(action_id)
        if proposal is not None:
            rows.append((proposal, await conn.records.ledger(action_id)))
    rows.sort(key=lambda row: row[0].occurred_at, reverse=True)
    if not rows:
        print("no pending proposals" if not include_all else "no proposals", file=out)
        return 0
    print(
        f"{'ID':<21} {'CHAIN':<12} {'TIER':<8} {'APPROVALS':<9} {'STATE':<16} {'EXPIRES':<20} ACTION",
        file=out,
    )
    for proposal, ledger in rows:
        state: str = ledger.decision or proposal.status
        if state == "pending_approval" and now >= proposal.expires_at:
            state = "expiring"
        approvals = f"{len(ledger.approvals)}/{proposal.approvals_required}"
        expires = proposal.expires_at.strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{proposal.action_id:<21} {proposal.chain_id:<12} {proposal.tier:<8} {approvals:<9} "
            f"{state:<16} {expires:<20} {proposal.action.summary()}",
            file=out,
        )
    return 0


async def send_command(
    conn: Connection, action_id: str, *, command: CommandKind, by: str, reason: str, out: TextIO
) -> int:
    proposal = await conn.records.proposal(action_id)
    if proposal is None:
        raise CliError(f"no proposal with id {action_id!r} (see `sentinai actions list --all`)", code=2)
    ledger = await conn.records.ledger(action_id)
    if ledger.decision == "withdrawn":
        # The planner would refuse it for the same reason; say so rather than "sent".
        raise CliError(f"{action_id} was withdrawn: {ledger.why}", code=2)
    cmd = ActionCommand(
        chain_id=proposal.chain_id,
        correlation_id=proposal.correlation_id,
        action_id=action_id,
        command=command,
        by=by,
        reason=reason,
    )
    js = conn.nc.jetstream(timeout=TIMEOUT_S)
    await js.publish(
        subjects.action_command(proposal.chain_id),
        cmd.to_json(),
        stream=streams.ACTIONS.name,
        headers={"Nats-Msg-Id": cmd.event_id},
    )
    verb = "approval" if command == "approve" else "rejection"
    print(f"{verb} of {action_id} ({proposal.action.summary()}) by {by} sent to the planner", file=out)
    return 0


def audit_lines(records: list[AuditRecorded], *, chain: str | None, limit: int) -> list[AuditRecorded]:
    return [r for r in records if chain is None or r.chain_id == chain][:limit]


async def show_audit(conn: Connection, *, chain: str | None, limit: int, as_json: bool, out: TextIO) -> int:
    records = audit_lines(await conn.records.recent_audit(), chain=chain, limit=limit)
    if as_json:
        print(json.dumps([r.model_dump(mode="json", by_alias=True) for r in records], indent=2), file=out)
        return 0
    if not records:
        print("the audit trail is empty", file=out)
        return 0
    for r in records:
        when = r.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
        outcome = f" -> {r.outcome}" if r.outcome else ""
        why = f" ({r.reasoning})" if r.reasoning else ""
        print(
            f"{when} {r.chain_id:<12} {r.actor:<12} {r.kind:<20} {r.action_id or '-':<21} "
            f"{r.summary}{outcome}{why}",
            file=out,
        )
    return 0


# --------------------------------------------------------------------------------------------- argv


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    actions = sub.add_parser("actions", help="list, approve or reject the planner's proposals")
    verbs = actions.add_subparsers(dest="actions_command", required=True)
    listing = verbs.add_parser("list", help="pending proposals (all of them with --all)")
    listing.add_argument("--all", action="store_true", help="include decided, refused and automatic ones")
    for verb in ("approve", "reject"):
        parser = verbs.add_parser(verb, help=f"{verb} a pending proposal")
        parser.add_argument("action_id", metavar="ID")
        parser.add_argument("--by", required=True, help="your name: recorded in the audit trail")
        parser.add_argument("--reason", default="", help="why, for the audit trail")
    audit = sub.add_parser("audit", help="the last audit records, newest first")
    audit.add_argument("--chain", default=None)
    audit.add_argument("-n", type=int, default=100, help="how many (the planner keeps the last 100)")
    audit.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    settings = ServiceSettings()
    async with connect(nats_url(Path(args.state_dir), settings), settings) as conn:
        if args.command == "audit":
            return await show_audit(conn, chain=args.chain, limit=args.n, as_json=args.json, out=out)
        if args.actions_command == "list":
            return await list_actions(conn, include_all=args.all, out=out, now=utcnow())
        return await send_command(
            conn, args.action_id, command=args.actions_command, by=args.by, reason=args.reason, out=out
        )


async def main(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    """Run an `actions`/`audit` command; operator errors become a message and an exit code."""
    try:
        return await run(args, out=out)
    except CliError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except (NatsError, StateStoreError, TimeoutError) as exc:
        print(f"NATS or the state store failed: {exc!r}", file=sys.stderr)
        return 3
