"""Kubernetes API errors: the ``Status`` object an error is answered with, and the common ones."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


class KubeError(Exception):
    """An API error answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, *, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        return status_object(self.code, self.reason, self.message, details=self.details)


def status_object(code: int, reason: str, message: str, *, details: Obj | None = None) -> Obj:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(resource: str, name: str, *, group: str = "") -> KubeError:
    qualified = f"{resource}.{group}" if group else resource
    details = {"name": name, "kind": resource, **({"group": group} if group else {})}
    return KubeError(404, "NotFound", f'{qualified} "{name}" not found', details=details)
