"""The notifier's HTTP adapter: one POST per call over httpx (retries and dead letters: ``service``)."""

from __future__ import annotations

import httpx

from sentinai.api.notify.formats import Outbound
from sentinai.api.notify.service import Reply, Unreachable


class HttpSender:
    """The ``Sender`` port over one shared ``httpx.AsyncClient``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, outbound: Outbound, *, timeout_s: float) -> Reply:
        try:
            response = await self.client.post(
                outbound.url, content=outbound.body, headers=outbound.headers, timeout=timeout_s
            )
        except httpx.TransportError as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
        return Reply(response.status_code, response.text, response.headers.get("Retry-After"))
