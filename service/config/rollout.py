"""Each model's ``models.<name>.rollout``: whether an accepted candidate is rolled out
by canary, through which router, in which steps, judged how.

The router's own section (``file``, ``replicas``, ``gateway_api``, ``istio``,
``kserve``) mirrors the settings dataclass of its module in
:mod:`retrain.rollout`; the one the chosen router needs is required, under the
model's ``rollout`` key.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationInfo, field_validator

from retrain.rollout import CLUSTER_ROUTERS, ROUTERS
from retrain.rollout.settings import (
    DEFAULT_URI_ENV,
    FileSettings,
    ReplicasSettings,
    RolloutSettings,
    RolloutStep,
)
from retrain.rollout.span import AnalysisSettings
from service.config.base import Duration, Strict

if TYPE_CHECKING:
    # Their modules import the kubernetes client: only when a router is built.
    from retrain.rollout.gateway_api import GatewayApiSettings
    from retrain.rollout.istio import IstioSettings
    from retrain.rollout.kserve import KServeSettings

_NAME = Field(min_length=1)


class Cluster(Strict):
    """How a cluster router reaches the API: the Pod's service account, or a kubeconfig."""

    request_timeout: Duration = Field(default=10.0, gt=0)
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False


class FileRouterConfig(Strict):
    path: str = Field(min_length=1, description="the JSON file the serving layer reads")

    def settings(self) -> FileSettings:
        return FileSettings(self.path)


class ReplicasConfig(Cluster):
    namespace: str = _NAME
    stable_deployment: str = _NAME
    canary_deployment: str = _NAME
    total_replicas: int = Field(default=4, ge=2)
    container: str | None = None
    uri_env: str = Field(default=DEFAULT_URI_ENV, min_length=1)

    def settings(self) -> ReplicasSettings:
        return ReplicasSettings(**self.model_dump())


class GatewayApiConfig(Cluster):
    namespace: str = _NAME
    route: str = _NAME
    stable_service: str = _NAME
    canary_service: str = _NAME
    rule: int | str = 0
    version: str = "v1"

    def settings(self) -> GatewayApiSettings:
        from retrain.rollout.gateway_api import GatewayApiSettings

        return GatewayApiSettings(**self.model_dump())


class IstioDestination(Strict):
    host: str = _NAME
    subset: str | None = None


class IstioConfig(Cluster):
    namespace: str = _NAME
    virtual_service: str = _NAME
    stable: IstioDestination
    canary: IstioDestination
    route: int | str = 0
    version: str = "v1"

    def settings(self) -> IstioSettings:
        from retrain.rollout.istio import Destination, IstioSettings

        fields = self.model_dump(exclude={"stable", "canary"})
        stable = Destination(self.stable.host, self.stable.subset)
        canary = Destination(self.canary.host, self.canary.subset)
        return IstioSettings(stable=stable, canary=canary, **fields)


class KServeConfig(Cluster):
    namespace: str = _NAME
    inference_service: str = _NAME
    version: str = "v1beta1"

    def settings(self) -> KServeSettings:
        from retrain.rollout.kserve import KServeSettings

        return KServeSettings(**self.model_dump())


class StepConfig(Strict):
    weight: int = Field(ge=1, le=100, description="the canary's percent of traffic")
    min_duration: Duration = Field(default=600.0, ge=0)
    min_events: int = Field(default=500, ge=0, description="canary events in the step's span")


class AnalysisConfig(Strict):
    """The thresholds of the canary checks (:class:`retrain.rollout.span.AnalysisSettings`)."""

    margin: float = Field(default=0.02, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_labeled: int = Field(default=200, ge=1)
    divergence_threshold: float = Field(default=0.1, gt=0, le=1)
    min_events: int = Field(default=500, ge=1)
    srm_alpha: float = Field(default=0.001, gt=0, lt=1)
    latency_percentile: float = Field(default=95.0, gt=0, lt=100)
    latency_max_ratio: float = Field(default=1.5, gt=1, allow_inf_nan=False)
    latency_min_samples: int = Field(default=200, ge=1)

    def settings(self) -> AnalysisSettings:
        return AnalysisSettings(**self.model_dump())


def _default_steps() -> list[StepConfig]:
    return [StepConfig(weight=w) for w in (5, 25, 50, 100)]


@dataclass(frozen=True, slots=True)
class RouterSections:
    """The router sections as :func:`retrain.rollout.make_router` reads them."""

    file: FileSettings | None = None
    replicas: ReplicasSettings | None = None
    gateway_api: GatewayApiSettings | None = None
    istio: IstioSettings | None = None
    kserve: KServeSettings | None = None


# The section each router needs: file's and the cluster routers'.
_SECTIONS = {"file": "file", **{kind: row[2] for kind, row in CLUSTER_ROUTERS.items()}}


# Validated when absent too: the chosen router's section is required.
_SECTION: Any = Field(default=None, validate_default=True)


class ModelRolloutConfig(Strict):
    enabled: bool = Field(default=False, description="roll out every accepted candidate")
    router: str = Field(default="manual", description=f"one of {', '.join(ROUTERS)}")
    file: FileRouterConfig | None = _SECTION
    replicas: ReplicasConfig | None = _SECTION
    gateway_api: GatewayApiConfig | None = _SECTION
    istio: IstioConfig | None = _SECTION
    kserve: KServeConfig | None = _SECTION
    steps: list[StepConfig] = Field(default_factory=_default_steps, min_length=1)
    step_deadline: Duration = Field(
        default=3600.0,
        gt=0,
        description=(
            "how long past min_duration a step waits for a verdict, and the router for a "
            "promotion or rollback it was asked for; then the rollout pauses"
        ),
    )
    max_failed_checks: int = Field(default=1, ge=1)
    analysis: AnalysisConfig = AnalysisConfig()

    @field_validator("router")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ROUTERS:
            raise ValueError(f"unknown router {v!r}; expected one of {', '.join(ROUTERS)}")
        return v

    @field_validator("file", "replicas", "gateway_api", "istio", "kserve", mode="after")
    @classmethod
    def _needed(cls, v: Any, info: ValidationInfo) -> Any:
        router = info.data.get("router")
        if v is None and router is not None and _SECTIONS.get(router) == info.field_name:
            raise ValueError(f"required when rollout.router is {router}")
        return v

    @field_validator("steps")
    @classmethod
    def _increasing(cls, v: list[StepConfig]) -> list[StepConfig]:
        weights = [s.weight for s in v]
        if any(b <= a for a, b in itertools.pairwise(weights)):
            raise ValueError(f"weights must increase from step to step, got {weights}")
        if weights[-1] != 100:
            raise ValueError(f"the last step must send all traffic (weight 100), got {weights}")
        return v

    def sections(self) -> RouterSections:
        def built(section: Any) -> Any:
            return None if section is None else section.settings()

        return RouterSections(
            built(self.file),
            built(self.replicas),
            built(self.gateway_api),
            built(self.istio),
            built(self.kserve),
        )

    def settings(self, model: str, task: str) -> RolloutSettings:
        return RolloutSettings(
            model=model,
            steps=tuple(
                RolloutStep(s.weight, timedelta(seconds=s.min_duration), s.min_events)
                for s in self.steps
            ),
            enabled=self.enabled,
            step_deadline=timedelta(seconds=self.step_deadline),
            max_failed_checks=self.max_failed_checks,
            analysis=self.analysis.settings(),
            task=task,
        )
