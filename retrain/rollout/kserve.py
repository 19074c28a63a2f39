"""The ``kserve`` router: a KServe ``InferenceService`` (``serving.kserve.io/v1beta1``)
whose predictor's ``storageUri`` is the canary's and ``canaryTrafficPercent`` its share.

KServe honours ``canaryTrafficPercent`` only in Serverless mode (Knative): a new
``storageUri`` makes a new revision, which receives the percentage while the
previously rolled-out revision keeps the rest. In RawDeployment mode the field is
ignored and the new URI takes all traffic at once: do not use this router there.

The URI lives in ``spec.predictor.model.storageUri`` (the schema since KServe 0.8) or,
on an object that has no ``model``, in the legacy framework field it uses
(``spec.predictor.sklearn.storageUri``, ...). driftwatch keeps what the object itself
cannot say in annotations: ``driftwatch/stable-version``, ``driftwatch/stable-uri``
(written with every split, so the object shows what a rollback restores) and
``driftwatch/canary-version`` (present while a canary is up).

What the object serves is read from ``status.components.predictor.traffic`` (the share
of the entry with ``latestRevision``) once ``status.observedGeneration`` has caught up
with ``metadata.generation``; before that, from the spec.

- ``set_weights``: the canary's URI and ``canaryTrafficPercent = p``, in one patch.
- ``promote``: the candidate's URI, no ``canaryTrafficPercent`` (removed with a merge
  patch null) and the stable annotations moved to the candidate; done once the status,
  caught up, shows the latest revision at 100%. An object without any status (no KServe
  controller reconciles it) is done at once: there is nothing to wait for.
- ``rollback``, one step per call: ``canaryTrafficPercent`` 0 (the previously rolled-out
  revision, the stable one, takes all traffic at once); then the stable URI, still at
  0% (a new revision of the stable model starts, taking no traffic); then, once that
  revision is ready, the field is removed. Removing it earlier would send all traffic to
  the latest *ready* revision, which until then is the rejected canary. Done when the
  stable URI is back with all traffic on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split, Target
from retrain.rollout.custom_objects import CustomObject, Obj, ObjectRef, connect, invalid

GROUP = "serving.kserve.io"
STABLE_VERSION = "driftwatch/stable-version"
STABLE_URI = "driftwatch/stable-uri"
CANARY_VERSION = "driftwatch/canary-version"
# The framework fields of the v1beta1 predictor before ``model`` (KServe < 0.8 objects).
FRAMEWORKS = (
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml", "lightgbm",
    "paddle", "huggingface",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class KServeSettings:
    """The InferenceService ``namespace``/``inference_service``."""

    namespace: str
    inference_service: str
    version: str = "v1beta1"
    request_timeout: float = 10.0
    # Where the cluster is: the Pod's service account, or a kubeconfig and its context.
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False


class KServeRouter:
    """One InferenceService's canary; see the module docstring."""

    @classmethod
    def connect(cls, settings: KServeSettings) -> KServeRouter:
        """The router for the configured cluster (in-cluster or a kubeconfig)."""
        return cls(connect(settings, "rollout.kserve"), settings)

    def __init__(self, api_client: client.ApiClient, settings: KServeSettings) -> None:
        ref = ObjectRef(
            GROUP,
            settings.version,
            "inferenceservices",
            "InferenceService",
            settings.namespace,
            settings.inference_service,
        )
        self._obj = CustomObject(api_client, ref, request_timeout=settings.request_timeout)

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        if not 0 <= canary_percent <= 100:
            raise RouterError(f"canary_percent {canary_percent} is not in 0..100", retriable=False)
        read = self._obj.get()
        field, uri = self._uri(read)
        if uri not in (stable.uri, canary.uri):
            raise invalid(
                self._obj.ref,
                f"spec.predictor.{field}.storageUri is {uri}, neither the stable "
                f"{stable.version} ({stable.uri}) nor the canary {canary.version}",
            )
        annotations = {
            STABLE_VERSION: stable.version,
            STABLE_URI: stable.uri,
            CANARY_VERSION: canary.version,
        }
        spec = {field: {"storageUri": canary.uri}, "canaryTrafficPercent": canary_percent}
        obj = self._write(read, annotations, spec)
        return self._split(obj)

    def get_weights(self) -> Split:
        return self._split(self._obj.get())

    def promote(self, candidate: Target) -> Progress:
        read = self._obj.get()
        field, _ = self._uri(read)
        annotations = {
            STABLE_VERSION: candidate.version,
            STABLE_URI: candidate.uri,
            CANARY_VERSION: None,
        }
        spec = {field: {"storageUri": candidate.uri}, "canaryTrafficPercent": None}
        return self._settled(self._write(read, annotations, spec), candidate)

    def rollback(self, stable: Target) -> Progress:
        read = self._obj.get()
        field, uri = self._uri(read)
        percent = _predictor(read).get("canaryTrafficPercent")
        if uri != stable.uri:
            spec: dict[str, Any] = {"canaryTrafficPercent": 0}
            if percent == 0:
                spec[field] = {"storageUri": stable.uri}
            obj = self._write(read, {}, spec)
            return Progress(False, f"{self._obj.ref}: {self._note(obj, stable)}")
        if percent is not None and not _ready(read):
            return Progress(False, f"{self._obj.ref}: {self._note(read, stable)}")
        annotations = {STABLE_VERSION: stable.version, STABLE_URI: stable.uri, CANARY_VERSION: None}
        obj = self._write(read, annotations, {"canaryTrafficPercent": None})
        return self._settled(obj, stable)

    def _write(self, read: Obj, annotations: dict[str, Any], predictor: dict[str, Any]) -> Obj:
        """Merge-patch what differs from ``read`` (nothing: no write); the object after."""
        meta = read.get("metadata") or {}
        if _differs(meta.get("annotations") or {}, annotations) or _differs(
            _predictor(read), predictor
        ):
            body: Obj = {"spec": {"predictor": predictor}}
            if annotations:
                body["metadata"] = {"annotations": annotations}
            return self._obj.patch(read, body)
        return read

    def _uri(self, obj: Obj) -> tuple[str, str]:
        """The predictor field that holds the storage URI, and the URI."""
        predictor = _predictor(obj)
        fields = ["model"] if "model" in predictor else [f for f in FRAMEWORKS if f in predictor]
        if not fields or not isinstance(predictor[fields[0]], dict):
            raise invalid(
                self._obj.ref, "spec.predictor has neither model nor a framework with storageUri"
            )
        uri = predictor[fields[0]].get("storageUri")
        if not isinstance(uri, str):
            raise invalid(self._obj.ref, f"spec.predictor.{fields[0]}.storageUri is not set")
        return fields[0], uri

    def _split(self, obj: Obj) -> Split:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        stable, canary = annotations.get(STABLE_VERSION), annotations.get(CANARY_VERSION)
        if canary is None:
            return Split(0, stable, None)
        served = _latest_percent(obj)
        if served is None:  # the controller has not caught up: what the spec asks
            served = _predictor(obj).get("canaryTrafficPercent", 100)
        return Split(int(served), stable, canary)

    def _settled(self, obj: Obj, target: Target) -> Progress:
        if "status" not in obj:
            return Progress(True, f"{self._obj.ref} has no status: nothing reconciles it")
        if _latest_percent(obj) == 100 and _ready(obj):
            return Progress(True)
        return Progress(False, f"{self._obj.ref}: {self._note(obj, target)}")

    def _note(self, obj: Obj, target: Target) -> str:
        latest = _latest_percent(obj)
        shown = "not yet reconciled" if latest is None else f"latest revision at {latest}%"
        return f"waiting for {target.version} ({target.uri}) to serve all traffic; {shown}"


def _predictor(obj: Obj) -> dict[str, Any]:
    predictor = (obj.get("spec") or {}).get("predictor")
    return predictor if isinstance(predictor, dict) else {}


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a merge patch of ``wanted`` would change ``current``."""
    for key, value in wanted.items():
        if value is None:
            if key in current:
                return True
        elif isinstance(value, dict):
            inner = current.get(key)
            if not isinstance(inner, dict) or _differs(inner, value):
                return True
        elif current.get(key) != value:
            return True
    return False


def _component(obj: Obj) -> dict[str, Any] | None:
    """The predictor's status, if it describes the current generation of the spec."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is not None and status.get("observedGeneration") != generation:
        return None
    component = (status.get("components") or {}).get("predictor")
    return component if isinstance(component, dict) else None


def _latest_percent(obj: Obj) -> int | None:
    """The share of the latest revision in the reconciled traffic, if there is one."""
    component = _component(obj)
    traffic = None if component is None else component.get("traffic")
    if not isinstance(traffic, list):
        return None
    return sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))


def _ready(obj: Obj) -> bool:
    """Whether the newest revision of the current spec is ready to take traffic."""
    component = _component(obj)
    if component is None:
        return "status" not in obj
    return bool(component.get("latestReadyRevision") == component.get("latestCreatedRevision"))
