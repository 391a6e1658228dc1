"""`sentinai actions list|approve|reject` and `sentinai audit`: a client of the REST API.

Reads are ``GET /api/actions`` and ``GET /api/audit``. A decision is ``POST
/api/actions/{id}/approve|reject`` with the caller's key in ``x-api-key``: the api authenticates it
(the key's owner is the actor), refuses every write in read-only mode, and answers with the
planner's verdict, which sets the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import quote

import httpx
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sentinai.cli import stack
from sentinai.common.events import utcnow
from sentinai.common.identity import distinct_identities

# What scripts tell apart; documented in every command's --help (EXIT_CODES).
ACCEPTED, REFUSED, UNREACHABLE, UNAUTHENTICATED, UNDECIDED = 0, 2, 3, 4, 5
EXIT_CODES = """\
exit codes:
  0  done: approved, rejected, or one more approval recorded (the verdict is printed)
  2  refused or not found; the api's reason is printed (read-only mode, a role that may not
     write, a repeated approval, the proposer approving, an expired or decided proposal, ...)
  3  the api is unreachable, failed, or did not answer in time
  4  not authenticated: no key, or a wrong or revoked one (HTTP 401)
  5  undecided: the api passed the decision on but the planner did not answer in time;
     see `sentinai actions list --all` for what became of it
"""
KEY_HELP = """\
your key: --key-file, else SENTINAI_API_KEY, else the key `sentinai up` keeps in the state folder.
Create one per person with `sentinai keys add NAME --role approver`.
"""
# The api waits for the planner's verdict (5 s by default) before it answers a write.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
AUDIT_MAX = 1000  # the most /api/audit returns in one page


class CliError(Exception):
    """A problem the operator can fix; printed without a traceback, with its exit code."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    api_url: str | None = Field(default=None, validation_alias=AliasChoices("SENTINAI_API_URL"))
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SENTINAI_API_KEY"))


def api_url(state_dir: Path, *, flag: str | None, settings: ClientSettings) -> str:
    """``--api-url``, else ``SENTINAI_API_URL``, else the running stack's (``<state>/up.json``)."""
    url = flag or settings.api_url
    if not url:
        runtime = stack.Runtime.load(stack.runtime_file(state_dir))
        url = runtime.api_url if runtime is not None else None
    if not url:
        raise CliError(
            f"no api to talk to: pass --api-url, set SENTINAI_API_URL, or start the stack "
            f"(`sentinai up`; none is running with state folder {state_dir})",
            code=UNREACHABLE,
        )
    return url.rstrip("/")


def api_key(state_dir: Path, *, key_file: str | None, settings: ClientSettings) -> str | None:
    """``--key-file``, else ``SENTINAI_API_KEY``, else the key `sentinai up` keeps in the state folder.

    The flag comes first: someone with the quick start's key in their shell who names their own
    key file must act as themselves, not as the stack's operator.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise CliError(f"cannot read the key file {path}: {exc}", code=UNAUTHENTICATED) from exc
        if not token:
            raise CliError(f"the key file {path} is empty", code=UNAUTHENTICATED)
        return token
    if settings.api_key is not None and settings.api_key.get_secret_value().strip():
        return settings.api_key.get_secret_value().strip()
    try:
        return stack.api_key_file(state_dir).read_text().strip() or None
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------- http


def problem(response: httpx.Response) -> str:
    """The api's reason: ``detail`` of a 4xx (a sentence, or FastAPI's list of validation errors)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in err.get('loc', ()))}: {err.get('msg', err)}"
            if isinstance(err, dict)
            else str(err)
            for err in detail
        )
    return json.dumps(body)[:500]


class Api:
    """The REST API at ``url``; every failure becomes a ``CliError`` with its exit code."""

    def __init__(self, url: str, *, key: str | None, client: httpx.Client) -> None:
        self.url = url
        self.key = key
        self.client = client

    def send(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        # Reads need no key; a key is only sent where it is needed.
        headers = {"x-api-key": self.key} if method == "POST" and self.key else {}
        try:
            return self.client.request(method, self.url + path, params=params, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise CliError(
                f"the api at {self.url} did not answer in time ({type(exc).__name__})", code=UNREACHABLE
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CliError(
                f"cannot reach the api at {self.url}: {exc} (is `sentinai up` running?)", code=UNREACHABLE
            ) from exc

    def fail(self, response: httpx.Response) -> CliError:
        status = response.status_code
        detail = problem(response)
        if status == 401:
            hint = (
                ""
                if self.key
                else " (no key was sent: pass --key-file or set SENTINAI_API_KEY; "
                "`sentinai keys add NAME --role approver` makes one)"
            )
            return CliError(f"not authenticated: {detail}{hint}", code=UNAUTHENTICATED)
        if 400 <= status < 500:
            return CliError(detail, code=REFUSED)
        return CliError(f"the api at {self.url} failed ({status}): {detail}", code=UNREACHABLE)

    def get(self, path: str, **params: Any) -> Any:
        response = self.send("GET", path, params={k: v for k, v in params.items() if v is not None})
        if response.status_code != 200:
            raise self.fail(response)
        return self.body(response)

    def body(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"{self.url} answered {response.status_code} with something that is not JSON: is it "
                "SentinAI's api?",
                code=UNREACHABLE,
            ) from exc


def action_path(action_id: str) -> str:
    return f"/api/actions/{quote(action_id, safe='')}"


# ------------------------------------------------------------------------------------------ commands


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def list_actions(api: Api, *, include_all: bool, as_json: bool, out: TextIO, now: datetime) -> int:
    rows: list[dict[str, Any]] = api.get(
        "/api/actions", status="all" if include_all else "pending", limit=1000
    )["actions"]
    if as_json:
        print(json.dumps(rows, indent=2), file=out)
        return ACCEPTED
    if not rows:
        print("no proposals" if include_all else "no pending proposals", file=out)
        return ACCEPTED
    print(
        f"{'ID':<21} {'CHAIN':<12} {'TIER':<8} {'APPROVALS':<9} {'STATE':<16} {'EXPIRES':<20} ACTION",
        file=out,
    )
    for row in rows:
        state = row["status"]
        if state == "pending_approval" and now >= datetime.fromisoformat(row["expiresAt"]):
            state = "expiring"
        names = [a["by"] for a in row["approvals"]]
        approvals = f"{distinct_identities(names)}/{row['approvalsRequired']}"
        print(
            f"{row['actionId']:<21} {row['chainId']:<12} {row['tier']:<8} {approvals:<9} "
            f"{state:<16} {_when(row['expiresAt']):<20} {row['summary']}",
            file=out,
        )
    return ACCEPTED


def verdict_line(verdict: dict[str, Any], *, summary: str) -> str:
    """What the planner decided, in one line: "approved act-… (restart op-node): approved by alice"."""
    label = f"{verdict['actionId']} ({summary})"
    status = verdict["status"]
    approvals: list[str] = list(verdict.get("approvals") or [])
    by = f" (approved by {', '.join(approvals)})" if approvals else ""
    if status == "approved":
        return f"approved {label}: approved by {', '.join(approvals) or 'nobody named'}"
    if status in ("waiting", "pending_approval"):
        count = distinct_identities(approvals)
        return f"waiting: {count}/{verdict['approvalsRequired']} distinct approvals for {label}{by}"
    reason = f": {verdict['reason']}" if verdict.get("reason") else ""
    return f"{status} {label}{reason}"


def decide(
    api: Api,
    action_id: str,
    *,
    command: Literal["approve", "reject"],
    reason: str,
    by: str | None,
    out: TextIO,
) -> int:
    summary: str = api.get(action_path(action_id))["summary"]
    body: dict[str, str] = {"reason": reason}
    if by is not None:
        body["by"] = by  # the api checks it names the key's owner
    response = api.send("POST", f"{action_path(action_id)}/{command}", body=body)
    if response.status_code == 202:
        note = api.body(response).get("note", "the planner did not answer in time")
        raise CliError(f"undecided: {action_id} ({summary}): {note}", code=UNDECIDED)
    if response.status_code != 200:
        raise api.fail(response)
    verdict: dict[str, Any] = api.body(response)
    if not verdict.get("accepted", True):
        raise CliError(verdict.get("reason") or f"{command} of {action_id} refused", code=REFUSED)
    print(verdict_line(verdict, summary=summary), file=out)
    return ACCEPTED


def show_audit(api: Api, *, chain: str | None, limit: int, as_json: bool, out: TextIO) -> int:
    records: list[dict[str, Any]] = api.get("/api/audit", chain=chain, limit=limit)["items"]
    if as_json:
        print(json.dumps(records, indent=2), file=out)
        return ACCEPTED
    if not records:
        print("the audit trail is empty", file=out)
        return ACCEPTED
    for r in records:
        outcome = f" -> {r['outcome']}" if r.get("outcome") else ""
        why = f" ({r['reasoning']})" if r.get("reasoning") else ""
        print(
            f"{_when(r['occurredAt'])} {r['chainId']:<12} {r['actor']:<12} {r['kind']:<20} "
            f"{r.get('actionId') or '-':<21} {r['summary']}{outcome}{why}",
            file=out,
        )
    return ACCEPTED


# --------------------------------------------------------------------------------------------- argv


def _audit_limit(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= AUDIT_MAX:
        raise argparse.ArgumentTypeError(f"expected a count from 1 to {AUDIT_MAX}, got {text!r}")
    return n


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reader = argparse.ArgumentParser(add_help=False)
    reader.add_argument(
        "--api-url", help="api base URL (default: SENTINAI_API_URL, else the one `sentinai up` started)"
    )
    writer = argparse.ArgumentParser(add_help=False, parents=[reader])
    writer.add_argument("--key-file", help="a file holding your API key (see below)")
    raw = argparse.RawDescriptionHelpFormatter

    actions = sub.add_parser(
        "actions",
        help="list, approve or reject the planner's proposals (through the api)",
        epilog=KEY_HELP + "\n" + EXIT_CODES,
        formatter_class=raw,
    )
    verbs = actions.add_subparsers(dest="actions_command", required=True)
    listing = verbs.add_parser(
        "list",
        parents=[reader],
        help="pending proposals (all with --all)",
        epilog="exit codes: 0 listed, 2 refused, 3 api unreachable",
        formatter_class=raw,
    )
    listing.add_argument("--all", action="store_true", help="include decided, refused and automatic ones")
    listing.add_argument("--json", action="store_true", help="the api's action views, as JSON")
    for verb in ("approve", "reject"):
        parser = verbs.add_parser(
            verb,
            parents=[writer],
            help=f"{verb} a pending proposal as the owner of your API key",
            epilog=KEY_HELP + "\n" + EXIT_CODES,
            formatter_class=raw,
        )
        parser.add_argument("action_id", metavar="ID")
        parser.add_argument("--reason", default="", help="why, for the audit trail")
        parser.add_argument(
            "--by",
            default=None,
            help="deprecated, accepted for one release: the actor is your key's owner; "
            "if given it must name that same person, or the api refuses",
        )
    audit = sub.add_parser(
        "audit",
        parents=[reader],
        help="the last audit records, newest first",
        epilog="exit codes: 0 shown, 2 refused (an unknown --chain), 3 api unreachable",
        formatter_class=raw,
    )
    audit.add_argument("--chain", default=None, help="only this chain")
    audit.add_argument(
        "-n", type=_audit_limit, default=100, help=f"how many, newest first (at most {AUDIT_MAX})"
    )
    audit.add_argument("--json", action="store_true", help="the records as the api returns them")


def run(args: argparse.Namespace, *, out: TextIO) -> int:
    settings = ClientSettings()
    state_dir = Path(args.state_dir)
    url = api_url(state_dir, flag=args.api_url, settings=settings)
    writing = args.command == "actions" and args.actions_command in ("approve", "reject")
    key = api_key(state_dir, key_file=args.key_file, settings=settings) if writing else None
    with httpx.Client(timeout=TIMEOUT) as client:
        api = Api(url, key=key, client=client)
        if args.command == "audit":
            return show_audit(api, chain=args.chain, limit=args.n, as_json=args.json, out=out)
        if args.actions_command == "list":
            return list_actions(api, include_all=args.all, as_json=args.json, out=out, now=utcnow())
        return decide(
            api, args.action_id, command=args.actions_command, reason=args.reason, by=args.by, out=out
        )


def main(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Run an `actions`/`audit` command; a refusal or failure becomes a message and an exit code."""
    try:
        return run(args, out=out or sys.stdout)
    except CliError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except KeyError as exc:
        print(f"the api's answer has no {exc} field: is it another SentinAI version?", file=sys.stderr)
        return UNREACHABLE
