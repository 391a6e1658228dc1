"""The change itself: patch the workload, verify it, roll it back if the chain does not get healthy."""

from __future__ import annotations

import logging
from typing import Any

from sentinai.common.decisions import AuditKind
from sentinai.executor import logic
from sentinai.executor.attempt import Attempt, Result
from sentinai.executor.feed import Samples
from sentinai.executor.kube import KubeError
from sentinai.executor.ports import Cluster, Feed
from sentinai.executor.verify import Verifier

log = logging.getLogger(__name__)


class Patcher:
    """Applies an action's patch and settles it: verified and kept, or rolled back, never half-done."""

    def __init__(self, *, feed: Feed, verifier: Verifier) -> None:
        self.feed = feed
        self.verifier = verifier

    async def act(self, attempt: Attempt, cluster: Cluster, component: str) -> Result:
        approved = attempt.approved
        timings: dict[str, float] = {}
        try:
            workload = await cluster.find(component)
        except (KubeError, logic.WorkloadShapeError) as exc:
            detail = f"nothing applied: cannot read the {component} workload: {exc}"
            return attempt.result("failed", detail, audits=[("failed", detail)])
        body = logic.patch_for(approved.action, workload, now=attempt.clock.now())
        if body is None:
            detail = f"nothing applied: no patch carries out {approved.action.kind}"
            return attempt.result("failed", detail, audits=[("failed", detail)])
        previous = workload.previous()
        target = f"{workload.kind} {workload.namespace}/{workload.name}"
        retried: list[str] = []
        details: dict[str, Any] = {"patch": body}
        async with self.feed.watch(approved.chain_id) as samples:
            await attempt.keeper.patching(previous=previous, patch=body)
            began = attempt.clock.monotonic()
            try:
                await cluster.patch(workload, body, retried=retried)
            except KubeError as exc:
                timings["patch"] = attempt.ms_since(began)
                undo = await self._undo(cluster, workload, body)
                detail = f"patch of {target} failed after {len(retried)} retried error(s): {exc}; {undo}"
                return attempt.result(
                    "failed", detail, timings=timings, previous=previous,
                    audits=[("failed", detail)], details=details | {"retries": retried, "undo": undo},
                )  # fmt: skip
            timings["patch"] = attempt.ms_since(began)
            if retried:
                details["retries"] = retried
            return await self.settle(
                attempt, cluster, workload, body, samples, timings=timings, began=began, details=details
            )

    async def settle(
        self,
        attempt: Attempt,
        cluster: Cluster,
        workload: logic.Workload,
        body: logic.Body,
        samples: Samples,
        *,
        timings: dict[str, float],
        began: float,
        details: dict[str, Any],
    ) -> Result:
        """The patch is in: verify it, and roll it back if the chain does not get healthy."""
        approved = attempt.approved
        previous = workload.previous()
        target = f"{workload.kind} {workload.namespace}/{workload.name}"
        try:
            judgement = await self.verifier.verify(
                attempt, cluster, workload, samples, timings=timings, began=began
            )
        except Exception as exc:  # the change is in: whatever went wrong, it must not stay half-verified
            log.exception("verification could not run")
            judgement = logic.Judgement(False, f"verification could not run: {type(exc).__name__}: {exc}")
        details = details | {"verification": judgement.reason}
        retries = len(details.get("retries", []))
        after = f" after {retries} retried error(s)" if retries else ""
        if judgement.passed:
            detail = f"{approved.action.summary()}: patched {target}{after}, verified: {judgement.reason}"
            return attempt.result(
                "succeeded", detail, timings=timings, previous=previous,
                audits=[("verified", judgement.reason), ("succeeded", detail)], details=details,
            )  # fmt: skip
        failed: tuple[AuditKind, str] = ("verification_failed", judgement.reason)
        rollback = logic.rollback_patch(workload, body)
        if rollback is None:
            detail = f"verification failed: {judgement.reason}; a restart cannot be rolled back"
            return attempt.result(
                "failed", detail, timings=timings, previous=previous,
                audits=[failed, ("failed", detail)], details=details,
            )  # fmt: skip
        rolled = attempt.clock.monotonic()
        try:
            await cluster.patch(workload, rollback)
        except KubeError as exc:
            detail = f"verification failed: {judgement.reason}; the rollback of {target} failed too: {exc}"
            return attempt.result(
                "failed", detail, timings=timings, previous=previous,
                audits=[failed, ("failed", detail)], details=details | {"rollback": rollback},
            )  # fmt: skip
        timings["rollback"] = attempt.ms_since(rolled)
        detail = f"verification failed: {judgement.reason}; {target} rolled back to the previous spec"
        return attempt.result(
            "rolled_back", detail, timings=timings, previous=previous,
            audits=[failed, ("rolled_back", detail)], details=details | {"rollback": rollback},
        )  # fmt: skip

    async def _undo(self, cluster: Cluster, workload: logic.Workload, body: logic.Body) -> str:
        """After a failed patch that may have gone in anyway, re-apply the captured spec."""
        rollback = logic.rollback_patch(workload, body)
        if rollback is None:
            return "nothing to roll back"
        try:
            await cluster.patch(workload, rollback)
        except KubeError as exc:
            return f"re-applying the previous spec failed too: {exc}"
        return "previous spec re-applied"
