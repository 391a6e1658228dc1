"""Read-only Kubernetes access for one chain's namespace through the official (synchronous) client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from sentinai.collector import logic

T = TypeVar("T")
COMPONENT_LABEL = "app.kubernetes.io/name"
_ERROR_BODY_KEEP = 300


class KubeError(RuntimeError):
    """A Kubernetes API call failed: unreachable, timed out, or answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeReader:
    """Pods, pod metrics and pod logs of one namespace; every call is bounded by ``timeout_s``.

    The client blocks, so calls run on threads. Each chain gets its own small pool: a cluster that
    hangs then ties up only its own chain's threads, never another chain's polls.
    """

    def __init__(self, api_client: k8s.ApiClient, *, namespace: str, timeout_s: float, name: str) -> None:
        self._api_client = api_client
        self._core = k8s.CoreV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"k8s-{name}")
        self.namespace = namespace
        self.timeout_s = timeout_s

    @classmethod
    def from_kubeconfig(cls, path: Path, *, namespace: str, timeout_s: float, name: str) -> KubeReader:
        configuration = k8s.Configuration()
        # urllib3 would otherwise retry a timed-out GET several times, multiplying the timeout; the
        # next poll is the retry.
        configuration.retries = 0
        try:
            api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(path), client_configuration=configuration
            )
        except Exception as exc:  # the loader raises ConfigException, OSError, YAML and key errors
            raise KubeError(f"cannot load kubeconfig {path}: {type(exc).__name__}: {exc}") from exc
        return cls(api_client, namespace=namespace, timeout_s=timeout_s, name=name)

    async def _run(self, what: str, call: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return call()
            except ApiException as exc:
                body = (exc.body or "")[:_ERROR_BODY_KEEP]
                raise KubeError(f"{what}: HTTP {exc.status} {exc.reason}: {body}", status=exc.status) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise KubeError(f"{what}: {type(exc).__name__}: {exc}") from exc

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, guarded)

    async def pods(self, component: str) -> list[dict[str, Any]]:
        """Pods labelled ``app.kubernetes.io/name=<component>``, as Kubernetes JSON."""
        selector = f"{COMPONENT_LABEL}={component}"

        def call() -> list[dict[str, Any]]:
            # Raw JSON rather than the client's models: the pure core reads the API's own field names.
            response: Any = self._core.list_namespaced_pod(
                self.namespace,
                label_selector=selector,
                _request_timeout=self.timeout_s,
                _preload_content=False,
            )
            items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
            return items

        return await self._run(f"list pods {selector} in {self.namespace}", call)

    async def pod_usage(self, pod: str) -> dict[str, Any] | None:
        """The pod's ``metrics.k8s.io`` PodMetrics, or ``None`` while the metrics API has none yet."""

        def call() -> dict[str, Any]:
            result = self._custom.get_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", self.namespace, "pods", pod, _request_timeout=self.timeout_s
            )
            if not isinstance(result, dict):
                raise KubeError(f"pod metrics {self.namespace}/{pod}: not a JSON object")
            return result

        try:
            return await self._run(f"pod metrics {self.namespace}/{pod}", call)
        except KubeError as exc:
            # metrics-server reports a pod only after its first scrape (up to a minute after start).
            if exc.status == 404:
                return None
            raise

    async def tail_log(self, pod: str, *, container: str, lines: int) -> tuple[str, ...]:
        def call() -> str:
            text: str = self._core.read_namespaced_pod_log(
                pod, self.namespace, container=container, tail_lines=lines, _request_timeout=self.timeout_s
            )
            return text

        return logic.split_log(await self._run(f"log of {self.namespace}/{pod}/{container}", call))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api_client.close()  # type: ignore[no-untyped-call]
