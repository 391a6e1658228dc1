"""A small synchronous client of the twin's control API (used by ``sentinai twin …`` and tests)."""

from __future__ import annotations

from typing import Any

import httpx


class TwinControl:
    """``TwinControl("http://127.0.0.1:PORT")``: the twin server's root URL."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def __enter__(self) -> TwinControl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        return bool(self._json(self._http.get("/control/health")).get("ok"))

    def chains(self) -> list[str]:
        chains: list[str] = self._json(self._http.get("/control/chains"))
        return chains

    def inject(self, chain: str, kind: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start an incident; raises ``httpx.HTTPStatusError`` (422) for an unknown kind."""
        body = {"kind": kind, "params": params or {}}
        incident: dict[str, Any] = self._json(
            self._http.post(f"/control/chains/{chain}/incidents", json=body)
        )
        return incident

    def clear(self, chain: str, kind: str | None = None) -> list[str]:
        """Stop one incident kind, or all; returns the kinds that were active."""
        path = f"/control/chains/{chain}/incidents" + (f"/{kind}" if kind else "")
        cleared: list[str] = self._json(self._http.delete(path))["cleared"]
        return cleared

    def state(self, chain: str) -> dict[str, Any]:
        state: dict[str, Any] = self._json(self._http.get(f"/control/chains/{chain}"))
        return state

    def step(self, chain: str, n: int = 1) -> dict[str, Any]:
        state: dict[str, Any] = self._json(self._http.post(f"/control/chains/{chain}/step", params={"n": n}))
        return state

    def traffic(self, chain: str, multiplier: float) -> dict[str, Any]:
        answer: dict[str, Any] = self._json(
            self._http.post(f"/control/chains/{chain}/traffic", json={"multiplier": multiplier})
        )
        return answer

    def kube_fault(
        self,
        *,
        verb: str = "patch",
        status: int = 500,
        times: int = 1,
        delay_s: float = 0.0,
        apply: bool = False,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Make the next ``times`` Kubernetes ``verb`` requests fail (see ``sentinai.twin.faults``)."""
        body = {
            "verb": verb,
            "status": status,
            "times": times,
            "delayS": delay_s,
            "apply": apply,
            "namespace": namespace,
        }
        report: dict[str, Any] = self._json(self._http.post("/control/kube/faults", json=body))
        return report

    def rpc_fault(self, chain: str, mode: str | None) -> dict[str, Any]:
        """``"down"`` (502), ``"hang"`` (no answer until cleared) or ``None`` (healthy again)."""
        answer: dict[str, Any] = self._json(
            self._http.put(f"/control/chains/{chain}/rpc-fault", json={"mode": mode})
        )
        return answer

    def faults(self) -> dict[str, Any]:
        """Faults still armed and the Kubernetes requests seen, per verb and namespace."""
        report: dict[str, Any] = self._json(self._http.get("/control/faults"))
        return report

    def clear_faults(self) -> dict[str, Any]:
        report: dict[str, Any] = self._json(self._http.delete("/control/faults"))
        return report
