"""`sentinai keys add|list|revoke`: per-person API keys in the api's key file.

The file (``--file``, else ``SENTINAI_API_KEYS_FILE``, else ``<state>/api-keys.json``, where
`sentinai up` points its api) keeps each key's name, role and hash. ``add`` prints the token once;
it is kept nowhere. The running api re-reads the file when it changes, so a new key works and a
revoked one stops working without a restart.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinai.api.keys import ALLOWED, ROLES, KeyEntry, KeyFileError, KeyStore, Role

REFUSED = 2


class KeysSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    api_keys_file: Path | None = Field(default=None, validation_alias=AliasChoices("SENTINAI_API_KEYS_FILE"))


def keys_file(state_dir: Path, *, flag: str | None, settings: KeysSettings) -> Path:
    """``--file``, else ``SENTINAI_API_KEYS_FILE``, else ``<state>/api-keys.json``."""
    if flag:
        return Path(flag)
    return settings.api_keys_file or state_dir / "api-keys.json"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else "-"


def _may(role: Role) -> str:
    allowed = sorted(ALLOWED[role])
    return ", ".join(allowed) if allowed else "read only"


def add(store: KeyStore, name: str, *, role: Role, out: TextIO) -> int:
    entry, token = store.add(name, role)
    print(f"added a key for {entry.name} ({entry.role}: {_may(entry.role)}) to {store.path}", file=out)
    print(f"token: {token}", file=out)
    print(
        f"The token is shown this once and stored nowhere (the file keeps its hash): hand it to "
        f"{entry.name} now.\nUse it as `export SENTINAI_API_KEY=<token>` for the CLI (or a file passed "
        "with --key-file), or in the x-api-key header over HTTP.",
        file=out,
    )
    return 0


def _row(entry: KeyEntry) -> dict[str, str | None]:
    return {
        "name": entry.name,
        "role": entry.role,
        "hint": entry.hint + "…",
        "createdAt": entry.created_at.isoformat(),
        "revokedAt": entry.revoked_at.isoformat() if entry.revoked_at else None,
    }


def list_keys(store: KeyStore, *, as_json: bool, out: TextIO) -> int:
    entries = store.load().keys
    if as_json:
        print(json.dumps([_row(e) for e in entries], indent=2), file=out)
        return 0
    if not entries:
        missing = "" if store.path is not None and store.path.exists() else " (the file does not exist yet)"
        print(f"no keys in {store.path}{missing}", file=out)
        return 0
    width = max(len("NAME"), *(len(e.name) for e in entries))
    print(f"{'NAME':<{width}} {'ROLE':<8} {'HINT':<10} {'CREATED':<19} REVOKED", file=out)
    for e in entries:
        hint = e.hint + "…"
        print(
            f"{e.name:<{width}} {e.role:<8} {hint:<10} {_when(e.created_at):<19} {_when(e.revoked_at)}",
            file=out,
        )
    return 0


def revoke(store: KeyStore, name: str, *, out: TextIO) -> int:
    count = store.revoke(name)
    if count == 0:
        print(f"no active key named {name!r} in {store.path} (see `sentinai keys list`)", file=sys.stderr)
        return REFUSED
    keys = "keys" if count > 1 else "key"
    print(f"revoked {count} {keys} of {name}; the api refuses it from its next request", file=out)
    return 0


# --------------------------------------------------------------------------------------------- argv


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--file",
        help="the key file (default: SENTINAI_API_KEYS_FILE, else api-keys.json in the state folder)",
    )
    keys = sub.add_parser(
        "keys",
        help="add, list or revoke the per-person API keys",
        description="Roles: operator (request, approve, reject), approver (approve, reject), "
        "viewer (no writes). Exit code 2: the file cannot be read or changed as asked.",
    )
    verbs = keys.add_subparsers(dest="keys_command", required=True)
    adding = verbs.add_parser("add", parents=[where], help="a new key for NAME; prints its token once")
    adding.add_argument("name", metavar="NAME", help="the person (or system) the key belongs to")
    adding.add_argument("--role", required=True, choices=ROLES)
    listing = verbs.add_parser("list", parents=[where], help="names, roles and hints (never the tokens)")
    listing.add_argument("--json", action="store_true")
    revoking = verbs.add_parser("revoke", parents=[where], help="revoke NAME's active key")
    revoking.add_argument("name", metavar="NAME")


def command(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store = KeyStore(keys_file(Path(args.state_dir), flag=args.file, settings=KeysSettings()))
    try:
        if args.keys_command == "add":
            return add(store, args.name, role=args.role, out=out)
        if args.keys_command == "list":
            return list_keys(store, as_json=args.json, out=out)
        return revoke(store, args.name, out=out)
    except KeyFileError as exc:
        print(exc, file=sys.stderr)
        return REFUSED
