"""The only writes the api makes: approve/reject commands and action requests, judged by the planner."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Header, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sentinai.api.readmodel import ReadModel
from sentinai.common.actions import Action
from sentinai.common.decisions import ActionCommand, ActionRequested, CommandKind, requested_action_id
from sentinai.common.events import SubjectToken


class Commands(Protocol):
    """Where decisions go: the bus in production (``action.command`` / ``action.requested``)."""

    async def command(self, cmd: ActionCommand) -> None: ...

    async def request(self, req: ActionRequested) -> None: ...


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class DecisionBody(_Body):
    by: str = Field(min_length=1, max_length=128, description="Who decides (recorded in the audit trail)")
    reason: str = Field(default="", max_length=2000)


class RequestBody(_Body):
    chain_id: SubjectToken
    action: Action = Field(description="One action of the closed catalogue; anything else is refused")
    requested_by: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=2000)


class Problem(BaseModel):
    """Every 4xx says what was wrong in ``detail``."""

    detail: str | list[Any]


WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key configured, or a missing or wrong x-api-key"},
    403: {"model": Problem, "description": "Read-only mode refuses every write"},
    404: {"model": Problem, "description": "Unknown proposal or chain"},
    409: {"model": Problem, "description": "The proposal is no longer pending"},
    429: {"model": Problem, "description": "Too many writes from this client; see Retry-After"},
}


class Accepted(_Body):
    action_id: str
    command: CommandKind | Literal["request"]
    event_id: str
    note: str


def write_router(model: ReadModel, commands: Commands, *, guard: Any) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["writes"], dependencies=[Depends(guard)], responses=WRITE_ERRORS)

    async def decide(action_id: str, body: DecisionBody, command: CommandKind) -> Accepted:
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
            by=body.by,
            reason=body.reason,
        )
        await commands.command(cmd)
        return Accepted(
            action_id=action_id,
            command=command,
            event_id=cmd.event_id,
            note="sent to the planner, which checks the approvers and the policy; watch /api/actions",
        )

    @router.post("/actions/{action_id}/approve", status_code=202, response_model_by_alias=True)
    async def approve(action_id: Annotated[str, Path(max_length=64)], body: DecisionBody) -> Accepted:
        return await decide(action_id, body, "approve")

    @router.post("/actions/{action_id}/reject", status_code=202, response_model_by_alias=True)
    async def reject(action_id: Annotated[str, Path(max_length=64)], body: DecisionBody) -> Accepted:
        return await decide(action_id, body, "reject")

    @router.post("/actions", status_code=202, response_model_by_alias=True)
    async def request_action(
        body: RequestBody,
        via: Annotated[
            Literal["rest", "mcp"],
            Header(
                alias="x-sentinai-via",
                description="Where the request came from, for the audit trail (the MCP server sends 'mcp').",
            ),
        ] = "rest",
    ) -> Accepted:
        if body.chain_id not in model.chains:
            raise HTTPException(404, detail=f"unknown chain {body.chain_id!r}; known: {sorted(model.chains)}")
        req = ActionRequested(
            chain_id=body.chain_id,
            action=body.action,
            requested_by=body.requested_by,
            reason=body.reason,
            via=via,
        )
        await commands.request(req)
        return Accepted(
            action_id=requested_action_id(req),
            command="request",
            event_id=req.event_id,
            note="the planner applies the policy: refused, automatic, or waiting for approvals",
        )

    return router
