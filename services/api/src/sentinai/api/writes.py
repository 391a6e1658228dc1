"""The only writes the api makes: approve/reject commands and action requests, judged by the planner.

Every write is made as the principal whose key is in ``x-api-key``; the route sends it to the planner
and answers with the planner's verdict (200 accepted, 409 refused, 404 unknown), or 202 when the
planner has not answered within ``verdict_timeout_s`` (the write was sent and will still be judged).
"""

# No ``from __future__ import annotations`` here: the routes' guard aliases are built per router
# (they hold that router's ``WriteGuard``), and FastAPI resolves string annotations only at module level.
from typing import Annotated, Any, Literal, Protocol, Self

from fastapi import APIRouter, Depends, Header, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sentinai.api.auth import WriteGuard
from sentinai.api.keys import Principal
from sentinai.api.readmodel import ReadModel
from sentinai.common.actions import Action
from sentinai.common.decisions import (
    ActionCommand,
    ActionRequested,
    ActionVerdict,
    CommandKind,
    VerdictCode,
    VerdictKind,
    requested_action_id,
)
from sentinai.common.events import SubjectToken
from sentinai.common.identity import same_identity

ActionId = Annotated[str, Path(max_length=64)]


class Commands(Protocol):
    """Where decisions go (the bus in production: ``action.command`` / ``action.requested``).

    Each call returns the planner's verdict on what was sent, or ``None`` when the planner has not
    answered in time (what was sent stays on the stream and is judged when the planner gets to it).
    """

    async def command(self, cmd: ActionCommand) -> ActionVerdict | None: ...

    async def request(self, req: ActionRequested) -> ActionVerdict | None: ...


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class DecisionBody(_Body):
    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description=(
            "Optional. The decision is always recorded as the key's principal; a name given here "
            "must be that principal (compared case- and width-insensitively), else 403."
        ),
    )
    reason: str = Field(default="", max_length=2000)


class RequestBody(_Body):
    chain_id: SubjectToken
    action: Action = Field(description="One action of the closed catalogue; anything else is refused")
    requested_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Optional. The requester is always the key's principal; a different name here is a 403.",
    )
    reason: str = Field(min_length=1, max_length=2000)


class Verdict(_Body):
    """The planner's answer to one write (``eventId``: the command's or request's event id)."""

    action_id: str
    kind: VerdictKind
    accepted: bool
    code: VerdictCode
    status: str = Field(
        description=(
            "The action's state after the planner judged: waiting (more approvals needed), approved, "
            "rejected, refused, expired, withdrawn, pending_approval or auto_approved"
        )
    )
    reason: str
    approvals: list[str]
    approvals_required: int
    event_id: str
    by: str = Field(description="The principal the write was made as (the key's owner)")

    @classmethod
    def of(cls, verdict: ActionVerdict, *, by: str) -> Self:
        return cls(
            action_id=verdict.action_id,
            kind=verdict.kind,
            accepted=verdict.accepted,
            code=verdict.code,
            status=verdict.status,
            reason=verdict.reason,
            approvals=list(verdict.approvals),
            approvals_required=verdict.approvals_required,
            event_id=verdict.answers,
            by=by,
        )


class Sent(_Body):
    """The write was sent but the planner has not answered in time; it will still be judged."""

    action_id: str
    kind: VerdictKind
    event_id: str
    by: str
    note: str


class Problem(BaseModel):
    """Every 4xx says what was wrong in ``detail``."""

    detail: str | list[Any]


class Refusal(BaseModel):
    """The planner's refusal: its reason in ``detail`` and the whole verdict beside it."""

    detail: str
    verdict: Verdict


WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Sent,
        "description": (
            "Sent, but the planner has not answered within verdict_timeout_s "
            "(SENTINAI_API_VERDICT_TIMEOUT_S); it will still judge the write: watch "
            "/api/actions/{actionId} or /api/audit"
        ),
    },
    401: {
        "model": Problem,
        "description": "No API key is configured, or the x-api-key is missing, wrong or revoked",
    },
    403: {
        "model": Problem,
        "description": (
            "Read-only mode refuses every write; the key's role does not allow this write; or by / "
            "requestedBy names someone other than the key's principal"
        ),
    },
    404: {
        "model": Problem,
        "description": (
            "Unknown proposal or chain; when the planner does not know the action, the body also "
            "carries its verdict (code unknown_action)"
        ),
    },
    409: {
        "model": Refusal,
        "description": (
            "The proposal is no longer pending (detail only), or the planner refused the write: detail "
            "is its reason and verdict.code says why (proposer, same_principal, expired, withdrawn, "
            "not_pending, policy, cooldown)"
        ),
    },
    429: {"model": Problem, "description": "Too many writes by this principal; see Retry-After"},
    503: {"model": Problem, "description": "The API key file cannot be read"},
}


def _check_name(given: str | None, principal: Principal, *, field: str) -> None:
    """A name in the body is optional; when given it must be the key's principal."""
    if given is not None and not same_identity(given, principal.name):
        raise HTTPException(
            403,
            detail=(
                f"this x-api-key is {principal.name}'s but {field} says {given!r}: a write is always "
                f"made as the key's owner; leave {field} out or use {principal.name}'s own key"
            ),
        )


def _answer(
    verdict: ActionVerdict | None,
    *,
    action_id: str,
    kind: VerdictKind,
    event_id: str,
    by: str,
    timeout_s: float,
) -> Verdict | JSONResponse:
    if verdict is None:
        note = (
            f"sent to the planner, which has not answered within {timeout_s:g} s; it will still judge "
            f"it: watch /api/actions/{action_id} or /api/audit"
        )
        sent = Sent(action_id=action_id, kind=kind, event_id=event_id, by=by, note=note)
        return JSONResponse(sent.model_dump(mode="json", by_alias=True), status_code=202)
    body = Verdict.of(verdict, by=by)
    if verdict.accepted:
        return body
    refusal = Refusal(detail=verdict.reason, verdict=body)
    status = 404 if verdict.code == "unknown_action" else 409
    return JSONResponse(refusal.model_dump(mode="json", by_alias=True), status_code=status)


def write_router(
    model: ReadModel, commands: Commands, *, guard: WriteGuard, verdict_timeout_s: float
) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["writes"], responses=WRITE_ERRORS)
    # Each route's guard returns the caller's principal (or refuses: read-only, key, role, rate).
    Approver = Annotated[Principal, Depends(guard.require("approve"))]
    Rejecter = Annotated[Principal, Depends(guard.require("reject"))]
    Requester = Annotated[Principal, Depends(guard.require("request"))]

    async def decide(
        action_id: str, body: DecisionBody, command: CommandKind, principal: Principal
    ) -> Verdict | JSONResponse:
        _check_name(body.by, principal, field="by")
        record = model.actions.get(action_id)
        if record is None:
            raise HTTPException(404, detail=f"no proposal with id {action_id!r}")
        if record.status != "pending_approval":
            why = f": {record.decision_reason}" if record.decision_reason else ""
            raise HTTPException(409, detail=f"{action_id} is {record.status}, not pending approval{why}")
        proposal = record.proposal
        cmd = ActionCommand(
            chain_id=proposal.chain_id,
            correlation_id=proposal.correlation_id,
            action_id=action_id,
            command=command,
            by=principal.name,
            reason=body.reason,
        )
        verdict = await commands.command(cmd)
        return _answer(
            verdict,
            action_id=action_id,
            kind=command,
            event_id=cmd.event_id,
            by=principal.name,
            timeout_s=verdict_timeout_s,
        )

    @router.post("/actions/{action_id}/approve", response_model=Verdict, response_model_by_alias=True)
    async def approve(action_id: ActionId, body: DecisionBody, principal: Approver) -> Verdict | JSONResponse:
        """Approve a pending proposal as the key's principal; answers with the planner's verdict."""
        return await decide(action_id, body, "approve", principal)

    @router.post("/actions/{action_id}/reject", response_model=Verdict, response_model_by_alias=True)
    async def reject(action_id: ActionId, body: DecisionBody, principal: Rejecter) -> Verdict | JSONResponse:
        """Reject a pending proposal as the key's principal; answers with the planner's verdict."""
        return await decide(action_id, body, "reject", principal)

    @router.post("/actions", response_model=Verdict, response_model_by_alias=True)
    async def request_action(
        body: RequestBody,
        principal: Requester,
        via: Annotated[
            Literal["rest", "mcp", "cli"],
            Header(
                alias="x-sentinai-via",
                description=(
                    "Where the request came from, for the audit trail. The MCP server sends 'mcp': "
                    "an agent's request then waits for a human approval whatever its tier."
                ),
            ),
        ] = "rest",
    ) -> Verdict | JSONResponse:
        """Request a catalogue action as the key's principal; the planner applies the risk policy."""
        _check_name(body.requested_by, principal, field="requestedBy")
        if body.chain_id not in model.chains:
            raise HTTPException(404, detail=f"unknown chain {body.chain_id!r}; known: {sorted(model.chains)}")
        req = ActionRequested(
            chain_id=body.chain_id,
            action=body.action,
            requested_by=principal.name,
            reason=body.reason,
            via=via,
            agent=via == "mcp",
        )
        verdict = await commands.request(req)
        return _answer(
            verdict,
            action_id=requested_action_id(req),
            kind="request",
            event_id=req.event_id,
            by=principal.name,
            timeout_s=verdict_timeout_s,
        )

    return router
