"""The ``replicas`` router: two Deployments, stable and canary, behind one Service.

Without a mesh or a gateway the only traffic split Kubernetes offers is the Service's
spread over ready Pods, so the weight is approximated by replica counts, as Argo
Rollouts does without a traffic router. The operator creates both Deployments and
the Service (its selector matches a label both Pod templates carry, not the label
that tells them apart); this router only patches the two Deployments
(``get`` and ``patch`` on two named ``deployments``: see
``deploy/kubernetes/routers/replicas-role.yaml``).

Granularity. The two Deployments add up to ``total_replicas`` (T) during the canary.
For a requested percent p > 0 the canary runs ``round(T * p / 100)`` replicas
(halves rounded up), at least 1, and the stable keeps at least 1 until the promotion,
so the canary runs at most T - 1; the split served and reported is
``canary / T``. With T = 4 the steps are 25%: 5% → 1 (25%), 25% → 1, 50% → 2 (50%),
100% → 3 (75%); with T = 10 they are 10%, and 5% → 1 (10%). kube-proxy balances
connections, not requests, over the ready Pods: the split holds for clients that open
many connections, while a few long-lived keep-alive clients see a coarser one.

The model reaches a Deployment through its Pod template: the environment variable
``uri_env`` (default ``MODEL_URI``) of the container ``container`` (default: the
first) holds the artifact URI, and the annotations ``driftwatch/model-version`` and
``driftwatch/model-sha256`` the version and digest. Changing them rolls the
Deployment's Pods; a stable Deployment set up without the annotations is rolled once,
at the first step. :meth:`ReplicasRouter.get_weights` reads the split from the two
``spec.replicas`` and the versions from the annotations (None for a Deployment at 0
replicas or not annotated yet).

- ``set_weights(stable, canary, p)``: each Deployment's template to its target and its
  replicas to its share; whichever Deployment grows is patched first, so capacity does
  not dip. It does not wait for Pods.
- ``promote(candidate)``: the stable Deployment's template to the candidate and its
  replicas to T; not done while that rollout is incomplete (``observedGeneration`` ≥
  ``generation``, every replica updated and available, no old replica left); then
  the canary is scaled to 0, and the promotion is done.
- ``rollback(stable)``: the canary to 0 first (it is the suspect), the stable
  Deployment to the stable target and T replicas; done when that is available.

Every call reads both Deployments and patches only what differs from the end state,
so a repeat patches nothing. API errors: 5xx, 429, timeouts and connection failures
are retriable; 403, 404 and 422 are not, with the API server's message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from retrain import kubeclient
from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split, Target, check_percent
from retrain.rollout.settings import ReplicasSettings

VERSION_ANNOTATION = "driftwatch/model-version"
SHA256_ANNOTATION = "driftwatch/model-sha256"
T = TypeVar("T")


def canary_replicas(total: int, percent: int) -> int:
    """The canary's replicas for ``percent`` of ``total`` (see the module docstring)."""
    if percent <= 0:
        return 0
    return min(total - 1, max(1, math.floor(total * percent / 100 + 0.5)))


def served_percent(canary: int, stable: int) -> int:
    """The canary's share of ready replicas, in whole percent (halves rounded up)."""
    if canary + stable == 0:
        return 0
    return math.floor(100 * canary / (canary + stable) + 0.5)


class ReplicasRouter:
    """One model's split over the Deployments ``settings`` names."""

    def __init__(self, api_client: client.ApiClient, settings: ReplicasSettings) -> None:
        self.settings = settings
        self._apps = client.AppsV1Api(api_client)

    @classmethod
    def connect(cls, settings: ReplicasSettings) -> ReplicasRouter:
        """The router for the configured cluster (in-cluster or a kubeconfig)."""
        api_client = kubeclient.api_client(
            settings, "rollout.replicas", lambda message: RouterError(message, retriable=False)
        )
        return cls(api_client, settings)

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        check_percent(canary_percent)
        s = self.settings
        want_canary = canary_replicas(s.total_replicas, canary_percent)
        stable_dep, canary_dep = self._read(s.stable_deployment), self._read(s.canary_deployment)
        patches = [
            (s.canary_deployment, self._wanted(canary_dep, canary, want_canary)),
            (s.stable_deployment, self._wanted(stable_dep, stable, s.total_replicas - want_canary)),
        ]
        if want_canary < _replicas(canary_dep):  # shrinking the canary: grow the stable first
            patches.reverse()
        for name, patch in patches:
            if patch is not None:
                self._patch(name, patch)
        version = canary.version if want_canary else None
        return Split(served_percent(want_canary, s.total_replicas - want_canary), stable.version,
                     version)  # fmt: skip

    def get_weights(self) -> Split:
        stable = self._read(self.settings.stable_deployment)
        canary = self._read(self.settings.canary_deployment)
        canary_n, stable_n = _replicas(canary), _replicas(stable)
        return Split(
            served_percent(canary_n, stable_n),
            _annotation(stable, VERSION_ANNOTATION) if stable_n else None,
            _annotation(canary, VERSION_ANNOTATION) if canary_n else None,
        )

    def promote(self, candidate: Target) -> Progress:
        s = self.settings
        stable = self._read(s.stable_deployment)
        patch = self._wanted(stable, candidate, s.total_replicas)
        if patch is not None:
            stable = self._patch(s.stable_deployment, patch)
        waiting = rollout_incomplete(stable)
        if waiting is not None:
            return Progress(False, f"stable Deployment {s.stable_deployment}: {waiting}")
        self._scale_to_zero(s.canary_deployment)
        return Progress(True)

    def rollback(self, stable: Target) -> Progress:
        s = self.settings
        self._scale_to_zero(s.canary_deployment)
        current = self._read(s.stable_deployment)
        patch = self._wanted(current, stable, s.total_replicas)
        if patch is not None:
            current = self._patch(s.stable_deployment, patch)
        waiting = rollout_incomplete(current)
        if waiting is not None:
            return Progress(False, f"stable Deployment {s.stable_deployment}: {waiting}")
        return Progress(True)

    def _scale_to_zero(self, name: str) -> None:
        if _replicas(self._read(name)) != 0:
            self._patch(name, {"spec": {"replicas": 0}})

    def _wanted(
        self, deployment: client.V1Deployment, target: Target, replicas: int
    ) -> dict[str, Any] | None:
        """The strategic merge patch that brings ``deployment`` to ``target`` at
        ``replicas``, or None when it is there already."""
        spec: dict[str, Any] = {}
        if _replicas(deployment) != replicas:
            spec["replicas"] = replicas
        template: dict[str, Any] = {}
        annotations = {VERSION_ANNOTATION: target.version, SHA256_ANNOTATION: target.sha256}
        if any(_annotation(deployment, k) != v for k, v in annotations.items()):
            template["metadata"] = {"annotations": annotations}
        container = self._container(deployment)
        env = {e.name: e for e in container.env or []}
        current = env.get(self.settings.uri_env)
        if current is None or current.value != target.uri or current.value_from is not None:
            variable: dict[str, Any] = {"name": self.settings.uri_env, "value": target.uri}
            if current is not None and current.value_from is not None:
                variable["valueFrom"] = None  # a value and a valueFrom together are invalid
            template["spec"] = {"containers": [{"name": container.name, "env": [variable]}]}
        if template:
            spec["template"] = template
        return {"spec": spec} if spec else None

    def _container(self, deployment: client.V1Deployment) -> client.V1Container:
        pod = deployment.spec.template.spec
        containers = (pod.containers if pod is not None else None) or []
        wanted = self.settings.container
        for container in containers:
            if wanted is None or container.name == wanted:
                return container
        name = deployment.metadata.name if deployment.metadata is not None else None
        raise RouterError(
            f"rollout.replicas.container: Deployment {name} has no container {wanted!r} "
            f"(it has {', '.join(c.name for c in containers) or 'none'})",
            retriable=False,
        )

    def _read(self, name: str) -> client.V1Deployment:
        return self._call(
            f"get Deployment {self.settings.namespace}/{name}",
            lambda: self._apps.read_namespaced_deployment(
                name, self.settings.namespace, _request_timeout=self.settings.request_timeout
            ),
        )

    def _patch(self, name: str, body: dict[str, Any]) -> client.V1Deployment:
        return self._call(
            f"patch Deployment {self.settings.namespace}/{name}",
            lambda: self._apps.patch_namespaced_deployment(
                name, self.settings.namespace, body,
                _request_timeout=self.settings.request_timeout,
            ),
        )  # fmt: skip

    @staticmethod
    def _call(what: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except ApiException as exc:
            status = int(exc.status or 0)
            raise RouterError(
                f"rollout.replicas: {what}: {status} {kubeclient.api_reason(exc)}",
                retriable=kubeclient.is_retriable(exc),
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RouterError(f"rollout.replicas: {what}: {exc}", retriable=True) from exc


def rollout_incomplete(deployment: client.V1Deployment) -> str | None:
    """What a Deployment's rollout still waits for (as ``kubectl rollout status``
    judges it), or None when it is complete."""
    spec_replicas = _replicas(deployment)
    status = deployment.status
    meta = deployment.metadata
    generation = (meta.generation if meta is not None else None) or 0
    if status is None or (status.observed_generation or 0) < generation:
        return f"generation {generation} not yet observed by the controller"
    updated = status.updated_replicas or 0
    available = status.available_replicas or 0
    stuck = [
        c.message or c.reason
        for c in status.conditions or []
        if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded"
    ]
    suffix = f" ({stuck[0]})" if stuck else ""
    if updated < spec_replicas:
        return f"{updated} of {spec_replicas} replicas updated{suffix}"
    if (status.replicas or 0) > updated:
        return f"{(status.replicas or 0) - updated} old replicas pending termination{suffix}"
    if available < updated:
        return f"{available} of {updated} updated replicas available{suffix}"
    return None


def _replicas(deployment: client.V1Deployment) -> int:
    replicas = deployment.spec.replicas
    return 1 if replicas is None else int(replicas)


def _annotation(deployment: client.V1Deployment, key: str) -> str | None:
    meta = deployment.spec.template.metadata
    annotations = (meta.annotations if meta is not None else None) or {}
    value = annotations.get(key)
    return None if value is None else str(value)
