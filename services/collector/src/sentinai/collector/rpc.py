"""A minimal JSON-RPC 2.0 client over an aiohttp session: batch calls, with a single-call fallback."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import aiohttp

_ids = itertools.count(1)
METHOD_NOT_FOUND = -32601
# A batch answered with one of these statuses was refused as a batch (a proxy or a node without
# batch support), not failed: the calls are then sent one by one, from then on.
_BATCH_REFUSED_STATUS = frozenset({400, 405, 413, 415, 422})

_JSON = {"content-type": "application/json"}

Call = tuple[str, list[Any]]


class RpcError(RuntimeError):
    """The endpoint answered, with a JSON-RPC error object."""

    def __init__(self, method: str, url: str, code: int, message: str) -> None:
        super().__init__(f"{method} at {url}: JSON-RPC error {code}: {message}")
        self.method = method
        self.code = code


class RpcTransportError(RuntimeError):
    """The endpoint could not be reached, timed out, or did not answer with JSON-RPC."""


class _BatchRefusedError(Exception):
    """The endpoint does not take batches; the calls go one by one instead."""


class JsonRpc:
    """One endpoint. ``batch`` sends several calls in one POST when the endpoint accepts it.

    Batching is what keeps a poll cheap: one HTTP round trip per endpoint instead of one per method.
    """

    def __init__(self, client: aiohttp.ClientSession, url: str) -> None:
        self._client = client
        self.url = url
        self.batches = True

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or []}
        body = await self._post(payload, what=method)
        if not isinstance(body, dict):
            raise RpcTransportError(f"{method} at {self.url}: answer is not a JSON-RPC object")
        return self._result(method, body)

    async def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Each call's result, or the ``RpcError`` it answered with (returned, not raised).

        A transport failure fails the whole batch (raised). An endpoint that refuses batches gets
        the calls one at a time, and is remembered as such.
        """
        if len(calls) > 1 and self.batches:
            try:
                return await self._batch(calls)
            except _BatchRefusedError:
                self.batches = False
        results: list[Any] = []
        for method, params in calls:
            try:
                results.append(await self.call(method, params))
            except RpcError as exc:
                results.append(exc)
        return results

    async def _batch(self, calls: Sequence[Call]) -> list[Any]:
        ids = [next(_ids) for _ in calls]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
            for i, (method, params) in zip(ids, calls, strict=True)
        ]
        body = await self._post(payload, what=calls[0][0], batch=len(calls))
        if not isinstance(body, list):
            # A node without batch support answers the array with a single error object.
            raise _BatchRefusedError
        by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
        results: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            answer = by_id.get(i)
            if answer is None:
                raise RpcTransportError(f"{method} at {self.url}: no answer for it in the batch")
            try:
                results.append(self._result(method, answer))
            except RpcError as exc:
                results.append(exc)
        return results

    async def _post(self, payload: object, *, what: str, batch: int = 0) -> Any:
        where = f"{what} at {self.url}" + (f" (batch of {batch})" if batch else "")
        try:
            async with self._client.post(self.url, data=json.dumps(payload), headers=_JSON) as response:
                if batch and response.status in _BATCH_REFUSED_STATUS:
                    raise _BatchRefusedError
                if response.status >= 400:
                    raise RpcTransportError(f"{where}: HTTP {response.status} {response.reason}")
                return json.loads(await response.read())
        except TimeoutError as exc:
            raise RpcTransportError(f"{where}: timed out ({type(exc).__name__})") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise RpcTransportError(f"{where}: {type(exc).__name__}: {exc}") from exc

    def _result(self, method: str, body: dict[str, Any]) -> Any:
        error = body.get("error")
        if error is not None:
            code = error.get("code", 0) if isinstance(error, dict) else 0
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            raise RpcError(method, self.url, int(code), str(message))
        if "result" not in body:
            raise RpcTransportError(f"{method} at {self.url}: answer has neither result nor error")
        return body["result"]
