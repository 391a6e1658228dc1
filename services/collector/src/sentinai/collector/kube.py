"""Read-only Kubernetes access to one chain's namespace: pods, pod metrics and logs, as raw JSON.

The kubeconfig is read with the official client's loader (contexts, certificates, token refresh),
but requests go out on an aiohttp session and answers are parsed with ``json.loads``: the official
client's blocking calls needed a thread each, and its per-call overhead was most of the collector's
CPU. One list of pods and one list of pod metrics per poll cover all components.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from sentinai.collector import logic
from sentinai.common.events import COMPONENTS

COMPONENT_LABEL = "app.kubernetes.io/name"
# Every component in one request: a set-based selector, which the API server and metrics-server take.
SELECTOR = f"{COMPONENT_LABEL} in ({','.join(sorted(COMPONENTS))})"
_ERROR_BODY_KEEP = 300
# The bearer token is read again this often; a kubeconfig's exec plugin or an expiring token is
# refreshed by the official loader's hook then (on a thread: an exec plugin blocks).
_TOKEN_REFRESH_S = 60.0


class KubeError(RuntimeError):
    """A Kubernetes API call failed: unreachable, timed out, or answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Token:
    """The ``Authorization`` header from the loaded configuration, re-read every ``_TOKEN_REFRESH_S``."""

    def __init__(self, configuration: k8s.Configuration) -> None:
        self._configuration = configuration
        self._value: str | None = None
        self._read_at = -_TOKEN_REFRESH_S
        self._lock = asyncio.Lock()

    def _read(self) -> str | None:
        value = self._configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None

    async def header(self) -> dict[str, str]:
        if time.monotonic() - self._read_at >= _TOKEN_REFRESH_S:
            async with self._lock:
                if time.monotonic() - self._read_at >= _TOKEN_REFRESH_S:
                    self._value = await asyncio.to_thread(self._read)
                    self._read_at = time.monotonic()
        return {"authorization": self._value} if self._value else {}


def _tls(configuration: k8s.Configuration) -> ssl.SSLContext | bool:
    if not str(configuration.host).startswith("https://"):
        return True  # plain HTTP (a local API server or the twin): no TLS settings to build
    if not configuration.verify_ssl:
        return False
    return _tls_context(configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file)


@functools.lru_cache(maxsize=64)
def _tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """One context per set of certificates: chains in the same cluster share it (each holds a CA store)."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class KubeReader:
    """Pods, pod metrics and pod logs of one namespace; every call is bounded by ``timeout_s``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        server: str,
        namespace: str,
        timeout_s: float,
        token: _Token | None = None,
        tls: ssl.SSLContext | bool = True,
        proxy: str | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self._http = http
        self._server = server.rstrip("/")
        self._token = token
        self._tls = tls
        self._proxy = proxy
        self._server_hostname = server_hostname
        self.namespace = namespace
        self.timeout_s = timeout_s

    @classmethod
    def from_kubeconfig(cls, path: Path, *, namespace: str, timeout_s: float) -> KubeReader:
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path), client_configuration=configuration, persist_config=False
            )
            tls = _tls(configuration)
        except Exception as exc:  # the loader raises ConfigException, OSError, YAML and key errors
            raise KubeError(f"cannot load kubeconfig {path}: {type(exc).__name__}: {exc}") from exc
        http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s), headers={"accept": "application/json"}
        )
        return cls(
            http,
            server=str(configuration.host),
            namespace=namespace,
            timeout_s=timeout_s,
            token=_Token(configuration),
            tls=tls,
            proxy=configuration.proxy or None,
            server_hostname=configuration.tls_server_name or None,
        )

    async def _get(self, what: str, path: str, params: dict[str, str]) -> bytes:
        try:
            headers = await self._token.header() if self._token is not None else {}
            async with self._http.get(
                self._server + path,
                params=params,
                headers=headers,
                ssl=self._tls,
                proxy=self._proxy,
                server_hostname=self._server_hostname,
            ) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise KubeError(f"{what}: timed out after {self.timeout_s:g}s") from exc
        except aiohttp.ClientError as exc:
            raise KubeError(f"{what}: {type(exc).__name__}: {exc}") from exc
        if response.status >= 400:
            text = body[:_ERROR_BODY_KEEP].decode(errors="replace")
            raise KubeError(
                f"{what}: HTTP {response.status} {response.reason}: {text}", status=response.status
            )
        return body

    async def _items(self, what: str, path: str) -> list[dict[str, Any]]:
        raw = await self._get(what, path, {"labelSelector": SELECTOR})
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise KubeError(f"{what}: answer is not JSON: {exc}") from exc
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise KubeError(f"{what}: answer has no list of items")
        return [item for item in items if isinstance(item, dict)]

    async def pods(self) -> list[dict[str, Any]]:
        """The components' pods (labelled ``app.kubernetes.io/name``), as Kubernetes JSON."""
        ns = self.namespace
        return await self._items(f"list pods {SELECTOR} in {ns}", f"/api/v1/namespaces/{ns}/pods")

    async def pod_usage(self) -> dict[str, dict[str, Any]]:
        """The components' ``metrics.k8s.io`` PodMetrics by pod name; empty while the API has none."""
        ns = self.namespace
        try:
            items = await self._items(
                f"list pod metrics {SELECTOR} in {ns}", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"
            )
        except KubeError as exc:
            # No metrics API in the cluster (yet): pods are reported without their usage.
            if exc.status == 404:
                return {}
            raise
        return {str(item.get("metadata", {}).get("name", "")): item for item in items}

    async def tail_log(self, pod: str, *, container: str, lines: int) -> tuple[str, ...]:
        ns = self.namespace
        raw = await self._get(
            f"log of {ns}/{pod}/{container}",
            f"/api/v1/namespaces/{ns}/pods/{pod}/log",
            {"container": container, "tailLines": str(lines)},
        )
        return logic.split_log(raw.decode(errors="replace"))

    async def aclose(self) -> None:
        await self._http.close()
