"""Read-only Kubernetes access to one chain's namespace through the official client: pods, pod
metrics, a node's kubelet stats summary and logs, read as raw JSON.

One list of pods and one list of pod metrics per poll cover all components (a set-based label
selector), and answers are parsed with ``json.loads`` instead of the client's models: per-component
gets and model deserialisation were most of the collector's CPU. The client blocks, so calls run on
two threads per chain: a cluster that hangs ties up only its own chain's threads. A poll's pod list,
metrics list and stats summary are one job on one thread, and so are a poll's log reads: at
hundreds of chains, handing each call to a thread and its answer back to the event loop cost more
than the calls did.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from sentinai.collector import logic
from sentinai.common.events import COMPONENTS

T = TypeVar("T")
COMPONENT_LABEL = "app.kubernetes.io/name"
# Every component in one request: a set-based selector, which the API server and metrics-server take.
SELECTOR = f"{COMPONENT_LABEL} in ({','.join(sorted(COMPONENTS))})"
_ERROR_BODY_KEEP = 300
REFRESH_EVERY_S = 30.0


class KubeError(RuntimeError):
    """A Kubernetes API call failed: unreachable, timed out, or answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PodsRead:
    """One poll's view of the namespace: its pods, their usage, and one pod's node stats summary."""

    pods: list[dict[str, Any]]
    usage: dict[str, dict[str, Any]]  # PodMetrics by pod name; empty while the API has none
    # The kubelet stats summary of the node running the pod asked for, or why it could not be read
    # (its failure costs only the metrics taken from it); ``None`` when none was asked for.
    summary: dict[str, Any] | Exception | None = None


class ThrottledRefresh:
    """Runs the kubeconfig loader's credential refresh at most every ``every_s`` seconds.

    The official client calls ``refresh_api_key_hook`` before every request; the loader's hook then
    re-applies the whole kubeconfig, and setting the host re-reads the proxy variables of the
    environment: about 6 % of a pod list's CPU. Tokens are renewed 5 minutes before they expire, so
    refreshing every 30 s changes nothing for an exec or expiring token. The loader's hook installs
    itself again each time it runs; this one takes its place again after.
    """

    def __init__(self, hook: Callable[[Any], None], *, every_s: float) -> None:
        self._hook = hook
        self._every_s = every_s
        self._due = 0.0

    def __call__(self, configuration: Any) -> None:
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self._every_s
        self._hook(configuration)
        if configuration.refresh_api_key_hook is not self:
            self._hook = configuration.refresh_api_key_hook
            configuration.refresh_api_key_hook = self


class KubeReader:
    """Pods, pod metrics and pod logs of one namespace; every call is bounded by ``timeout_s``."""

    def __init__(self, api_client: k8s.ApiClient, *, namespace: str, timeout_s: float) -> None:
        self._api_client = api_client
        self._core = k8s.CoreV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)
        # A poll's lists and a round of log reads can be in flight at once.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"k8s-{namespace}")
        self.namespace = namespace
        self.timeout_s = timeout_s

    @classmethod
    def from_kubeconfig(cls, path: Path, *, namespace: str, timeout_s: float) -> KubeReader:
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
        hook = api_client.configuration.refresh_api_key_hook
        if hook is not None:
            api_client.configuration.refresh_api_key_hook = ThrottledRefresh(hook, every_s=REFRESH_EVERY_S)
        return cls(api_client, namespace=namespace, timeout_s=timeout_s)

    def _guarded(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` on a worker thread, its failures as :class:`KubeError`."""
        try:
            return call()
        except ApiException as exc:
            body = (exc.body or "")[:_ERROR_BODY_KEEP]
            if isinstance(body, bytes):
                body = body.decode(errors="replace")
            raise KubeError(f"{what}: HTTP {exc.status} {exc.reason}: {body}", status=exc.status) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise KubeError(f"{what}: timed out after {self.timeout_s:g}s") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def _run(self, job: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    @staticmethod
    def _items(what: str, response: Any) -> list[dict[str, Any]]:
        """The ``items`` of a raw list answer (``_preload_content=False``)."""
        try:
            body = json.loads(response.data)
        except ValueError as exc:
            raise KubeError(f"{what}: answer is not JSON: {exc}") from exc
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise KubeError(f"{what}: answer has no list of items")
        return [item for item in items if isinstance(item, dict)]

    def _pods(self) -> list[dict[str, Any]]:
        what = f"list pods {SELECTOR} in {self.namespace}"

        def call() -> list[dict[str, Any]]:
            response = self._core.list_namespaced_pod(
                self.namespace,
                label_selector=SELECTOR,
                _request_timeout=self.timeout_s,
                _preload_content=False,
            )
            return self._items(what, response)

        return self._guarded(what, call)

    def _usage(self) -> dict[str, dict[str, Any]]:
        what = f"list pod metrics {SELECTOR} in {self.namespace}"

        def call() -> list[dict[str, Any]]:
            response = self._custom.list_namespaced_custom_object(
                "metrics.k8s.io",
                "v1beta1",
                self.namespace,
                "pods",
                label_selector=SELECTOR,
                _request_timeout=self.timeout_s,
                _preload_content=False,
            )
            return self._items(what, response)

        try:
            items = self._guarded(what, call)
        except KubeError as exc:
            # No metrics API in the cluster (yet): pods are reported without their usage.
            if exc.status == 404:
                return {}
            raise
        return {str(item.get("metadata", {}).get("name", "")): item for item in items}

    def _summary(self, node: str) -> dict[str, Any]:
        what = f"stats summary of node {node}"

        def call() -> dict[str, Any]:
            # The path is sent percent-encoded (stats%2Fsummary); the API server decodes it.
            response: Any = self._core.connect_get_node_proxy_with_path(
                node, "stats/summary", _request_timeout=self.timeout_s, _preload_content=False
            )
            try:
                body = json.loads(response.data)
            except ValueError as exc:
                raise KubeError(f"{what}: answer is not JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise KubeError(f"{what}: answer is not an object")
            return body

        return self._guarded(what, call)

    def _summary_of(self, pods: list[dict[str, Any]], component: str) -> dict[str, Any] | Exception:
        pod = logic.pick_pod(
            [p for p in pods if p.get("metadata", {}).get("labels", {}).get(COMPONENT_LABEL) == component]
        )
        node = None if pod is None else logic.node_of(pod)
        if node is None:
            return LookupError(f"no scheduled pod labelled {COMPONENT_LABEL}={component} in {self.namespace}")
        try:
            return self._summary(node)
        except KubeError as exc:
            return exc

    async def pods_and_usage(self, *, summary_of: str | None = None) -> PodsRead:
        """The components' pods (labelled ``app.kubernetes.io/name``) as Kubernetes JSON, their
        ``metrics.k8s.io`` PodMetrics, and (``summary_of`` a component) the kubelet stats summary
        of the node its pod runs on: one read after the other, as one job on one thread."""

        def job() -> PodsRead:
            pods, usage = self._pods(), self._usage()
            summary = None if summary_of is None else self._summary_of(pods, summary_of)
            return PodsRead(pods=pods, usage=usage, summary=summary)

        return await self._run(job)

    def _tail(self, pod: str, container: str, lines: int) -> tuple[str, ...]:
        def call() -> str:
            # Typed as str, but with _preload_content=False the client returns the raw response.
            response: Any = self._core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                tail_lines=lines,
                _request_timeout=self.timeout_s,
                _preload_content=False,
            )
            data: bytes = response.data
            return data.decode(errors="replace")

        return logic.split_log(self._guarded(f"log of {self.namespace}/{pod}/{container}", call))

    async def tail_logs(
        self, targets: Sequence[tuple[str, str]], *, lines: int
    ) -> list[tuple[str, ...] | KubeError]:
        """The last ``lines`` of each (pod, container), read one after the other as one job; each
        read's failure is its own. After a timeout the rest are not tried: the API is hanging, and
        each of them would hold the thread as long again."""

        def job() -> list[tuple[str, ...] | KubeError]:
            tails: list[tuple[str, ...] | KubeError] = []
            for pod, container in targets:
                try:
                    tails.append(self._tail(pod, container, lines))
                except KubeError as exc:
                    tails.append(exc)
                    if isinstance(exc.__cause__, urllib3.exceptions.TimeoutError):
                        skipped = KubeError(f"log of {self.namespace}: not read, the API timed out before")
                        tails += [skipped] * (len(targets) - len(tails))
                        break
            return tails

        return await self._run(job)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._api_client.close()  # type: ignore[no-untyped-call]
