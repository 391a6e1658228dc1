"""Faults the twin can be told to inject into its own APIs, for testing how callers survive them.

Kubernetes API faults answer the next N matching requests with an error ``Status`` (409 conflict,
500, 503, 504 …), optionally after a delay (a delay longer than the caller's timeout is a timeout),
and optionally after applying the write anyway (the change went in but the answer was lost).
RPC faults make one chain's JSON-RPC endpoints answer 502 (the node behind the load balancer is
down) or hang until the fault is cleared.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sentinai.twin import kube

# get and patch: of a workload; proxy: the node proxy to a kubelet (its stats summary).
KubeVerb = Literal["get", "patch", "proxy"]
RpcMode = Literal["down", "hang"]

REASONS: Final[dict[int, str]] = {
    403: "Forbidden",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class KubeFault(BaseModel):
    """The next ``times`` requests of ``verb`` (in ``namespace``, if given) fail as described."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    verb: KubeVerb = "patch"
    namespace: str | None = None
    # 0: no error status, only the delay (with a delay past the caller's timeout: a timeout).
    status: int = Field(default=500, ge=0, le=599)
    times: int = Field(default=1, ge=1, le=1000)
    delay_s: float = Field(default=0.0, ge=0, le=600)
    # A write that goes in before the error or the delay: the caller cannot know it succeeded.
    apply: bool = False

    def error(self, *, resource: str, name: str) -> kube.KubeError | None:
        if self.status == 0:
            return None
        reason = REASONS.get(self.status, "InternalError")
        if self.status == 409:
            message = (
                f'Operation cannot be fulfilled on {resource}.apps "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
        elif self.status == 504:
            message = "Timeout: request did not complete within requested timeout - context deadline exceeded"
        else:
            message = f"injected fault: {reason} ({self.status}) on {resource}/{name}"
        return kube.KubeError(self.status, reason, message, details={"name": name, "kind": resource})


@dataclass
class Faults:
    """The faults waiting to fire and what the Kubernetes API has been asked, for tests to count."""

    kube: list[KubeFault] = field(default_factory=list)
    rpc: dict[str, RpcMode] = field(default_factory=dict)
    # (verb, namespace) → requests seen, faulted or not.
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired: Counter[tuple[str, str]] = field(default_factory=Counter)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def take_kube(self, verb: KubeVerb, namespace: str) -> KubeFault | None:
        """Count the request; the fault it meets, if any (its ``times`` counted down)."""
        self.requests[(verb, namespace)] += 1
        for index, fault in enumerate(self.kube):
            if fault.verb == verb and fault.namespace in (None, namespace):
                if fault.times <= 1:
                    self.kube.pop(index)
                else:
                    self.kube[index] = fault.model_copy(update={"times": fault.times - 1})
                self.fired[(verb, namespace)] += 1
                return fault
        return None

    def set_rpc(self, chain: str, mode: RpcMode | None) -> None:
        if mode is None:
            self.rpc.pop(chain, None)
            # Wake every hung request: they then answer normally.
            self._released.set()
            self._released = asyncio.Event()
        else:
            self.rpc[chain] = mode

    async def hang(self, chain: str, *, max_s: float = 600.0) -> None:
        """Block while ``chain``'s RPC is set to hang (bounded, so no request lives forever)."""
        released = self._released
        if self.rpc.get(chain) == "hang":
            try:
                await asyncio.wait_for(released.wait(), timeout=max_s)
            except TimeoutError:
                return

    def report(self) -> dict[str, object]:
        return {
            "kube": [f.model_dump(by_alias=True) for f in self.kube],
            "rpc": dict(self.rpc),
            "requests": [{"verb": v, "namespace": ns, "count": n} for (v, ns), n in self.requests.items()],
            "fired": [{"verb": v, "namespace": ns, "count": n} for (v, ns), n in self.fired.items()],
        }
