"""A minimal JSON-RPC 2.0 client over a shared httpx client."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_ids = itertools.count(1)
METHOD_NOT_FOUND = -32601


class RpcError(RuntimeError):
    """The endpoint answered, with a JSON-RPC error object."""

    def __init__(self, method: str, url: str, code: int, message: str) -> None:
        super().__init__(f"{method} at {url}: JSON-RPC error {code}: {message}")
        self.method = method
        self.code = code


class RpcTransportError(RuntimeError):
    """The endpoint could not be reached, timed out, or did not answer with JSON-RPC."""


class JsonRpc:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self.url = url

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or []}
        try:
            response = await self._client.post(self.url, json=payload)
            response.raise_for_status()
            body = response.json()
        except httpx.TimeoutException as exc:
            raise RpcTransportError(f"{method} at {self.url}: timed out ({type(exc).__name__})") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise RpcTransportError(f"{method} at {self.url}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(body, dict):
            raise RpcTransportError(f"{method} at {self.url}: answer is not a JSON-RPC object")
        error = body.get("error")
        if error is not None:
            code = error.get("code", 0) if isinstance(error, dict) else 0
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            raise RpcError(method, self.url, int(code), str(message))
        if "result" not in body:
            raise RpcTransportError(f"{method} at {self.url}: answer has neither result nor error")
        return body["result"]
