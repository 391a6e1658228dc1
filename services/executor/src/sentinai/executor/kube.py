"""Kubernetes writes for one chain's namespace through the official (synchronous) client."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from sentinai.executor.logic import Body, Workload, workload_from_json

T = TypeVar("T")
log = logging.getLogger(__name__)

COMPONENT_LABEL: Final = "app.kubernetes.io/name"
STRATEGIC_MERGE: Final = "application/strategic-merge-patch+json"
_ERROR_BODY_KEEP = 300


class KubeError(RuntimeError):
    """A Kubernetes call failed for good: a permanent status, or a transient one that outlived its retries."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _transient(status: int | None) -> bool:
    # No status: connection refused/reset or timed out. 409: a concurrent writer; 429: throttled.
    return status is None or status in (409, 429) or status >= 500


class KubeWriter:
    """Finds, reads and patches the workloads of one namespace; every call is bounded by ``timeout_s``.

    The client blocks, so calls run on this chain's own small thread pool. Transient failures are
    retried ``retries`` times with doubling back-off; what still fails raises ``KubeError``.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        namespace: str,
        timeout_s: float,
        retries: int,
        name: str,
        backoff_s: float = 0.5,
    ) -> None:
        self._api_client = api_client
        self._apps = k8s.AppsV1Api(api_client)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"k8s-{name}")
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    @classmethod
    def from_kubeconfig(
        cls, path: Path, *, namespace: str, timeout_s: float, retries: int, name: str
    ) -> KubeWriter:
        configuration = k8s.Configuration()
        # urllib3's own retries would hide how often we retried; ours are counted and bounded.
        configuration.retries = 0
        try:
            api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(path), client_configuration=configuration
            )
        except Exception as exc:  # the loader raises ConfigException, OSError, YAML and key errors
            raise KubeError(f"cannot load kubeconfig {path}: {type(exc).__name__}: {exc}") from exc
        return cls(api_client, namespace=namespace, timeout_s=timeout_s, retries=retries, name=name)

    async def _once(self, what: str, call: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return call()
            except ApiException as exc:
                body = (exc.body or "")[:_ERROR_BODY_KEEP]
                raise KubeError(f"{what}: HTTP {exc.status} {exc.reason}: {body}", status=exc.status) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise KubeError(f"{what}: {type(exc).__name__}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, guarded)

    async def _call(self, what: str, call: Callable[[], T], *, retried: list[str] | None = None) -> T:
        """``call`` with retries; each transient error that was retried is appended to ``retried``."""
        for attempt in range(self.retries + 1):
            try:
                return await self._once(what, call)
            except KubeError as exc:
                if not _transient(exc.status) or attempt == self.retries:
                    raise
                if retried is not None:
                    retried.append(str(exc))
                delay = self.backoff_s * 2**attempt
                log.warning("kubernetes call failed, retrying", extra={"what": what, "error": str(exc)})
                await asyncio.sleep(delay)  # back-off between attempts, not a wait for a condition
        raise AssertionError("unreachable")

    def _json(self, response: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(response.data)
        return data

    async def read(self, kind: str, name: str) -> dict[str, Any]:
        """The workload as the API returns it (spec and status), in the API's own JSON."""
        read = (
            self._apps.read_namespaced_stateful_set
            if kind == "StatefulSet"
            else self._apps.read_namespaced_deployment
        )

        def call() -> dict[str, Any]:
            return self._json(
                read(name, self.namespace, _request_timeout=self.timeout_s, _preload_content=False)
            )

        return await self._call(f"read {kind} {self.namespace}/{name}", call)

    async def find(self, component: str) -> Workload:
        """The StatefulSet or Deployment named after ``component``, else the one labelled with it."""
        for kind in ("StatefulSet", "Deployment"):
            try:
                return workload_from_json(await self.read(kind, component), component=component)
            except KubeError as exc:
                if exc.status != 404:
                    raise
        selector = f"{COMPONENT_LABEL}={component}"
        for kind, lister in (
            ("StatefulSet", self._apps.list_namespaced_stateful_set),
            ("Deployment", self._apps.list_namespaced_deployment),
        ):

            def call(lister: Callable[..., Any] = lister) -> list[dict[str, Any]]:
                answer = lister(
                    self.namespace,
                    label_selector=selector,
                    _request_timeout=self.timeout_s,
                    _preload_content=False,
                )
                items: list[dict[str, Any]] = self._json(answer).get("items") or []
                return items

            items = await self._call(f"list {kind}s {selector} in {self.namespace}", call)
            if items:
                return workload_from_json({"kind": kind, **items[0]}, component=component)
        raise KubeError(
            f"no StatefulSet or Deployment for {component} in namespace {self.namespace}", status=404
        )

    async def patch(
        self, workload: Workload, body: Body, *, retried: list[str] | None = None
    ) -> dict[str, Any]:
        patch = (
            self._apps.patch_namespaced_stateful_set
            if workload.kind == "StatefulSet"
            else self._apps.patch_namespaced_deployment
        )

        def call() -> dict[str, Any]:
            return self._json(
                patch(
                    workload.name,
                    self.namespace,
                    body,
                    _content_type=STRATEGIC_MERGE,
                    _request_timeout=self.timeout_s,
                    _preload_content=False,
                )
            )

        return await self._call(
            f"patch {workload.kind} {self.namespace}/{workload.name}", call, retried=retried
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api_client.close()  # type: ignore[no-untyped-call]
