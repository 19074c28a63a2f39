"""The ``retrain`` section and each model's ``models.*.retrain``: when and how it is retrained."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drift.performance import Task
from retrain.errors import yaml_problem
from retrain.gates import TASK_METRICS
from service.config.base import Duration, Strict

# A dotted name of at least two parts: what a skops file names (module.Class).
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


class Gate(Strict):
    """One metric's gate: ``min_delta`` (candidate better by at least) and/or
    ``max_degradation`` (candidate worse by at most), in the metric's direction."""

    min_delta: float | None = None
    max_degradation: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> Gate:
        if self.min_delta is None and self.max_degradation is None:
            raise ValueError("give min_delta, max_degradation or both")
        return self


class ModelRetrainConfig(Strict):
    enabled: bool = False
    drift_windows: int = Field(default=3, ge=0, description="consecutive drifted windows, 0: off")
    on_degradation: bool = True
    on_concept_alarm: bool = True
    cron: str | None = Field(default=None, description='a crontab line such as "0 3 * * 0"')
    min_new_labels: int = Field(default=1000, ge=0)
    cooldown: Duration = 3600.0
    data_window: Duration = Field(default=7 * 86400.0, gt=0)
    holdout_share: float = Field(default=0.2, gt=0, lt=1)
    min_holdout: int = Field(default=200, ge=1)
    task: Task = Task.CLASSIFICATION
    gates: dict[str, Gate] = Field(
        default_factory=lambda: {"accuracy": Gate(min_delta=0.0)},
        description="a mapping of metric to {min_delta, max_degradation}",
    )
    slice_feature: str | None = None
    slice_max_degradation: float = Field(default=0.05, ge=0)
    train_timeout: Duration = Field(default=3600.0, gt=0)
    validate_timeout: Duration = Field(default=1800.0, gt=0)
    pass_env: list[str] = Field(
        default_factory=list,
        description="names of the service's environment variables a local job also receives",
    )
    trusted_types: list[str] = Field(
        default_factory=list,
        description="module.Class names beyond the defaults the model's skops artifacts may hold",
    )
    estimator: Literal["champion", "default"] = Field(
        default="champion",
        description="champion: refit the production model's pipeline; default: the trainer's own",
    )
    search_budget: Duration = Field(
        default=0.0, ge=0, description="seconds of hyperparameter search per training, 0: none"
    )
    min_train_rows: int = Field(
        default=1000, ge=1, description="labelled rows a run's data widens back to reach"
    )

    @field_validator("trusted_types")
    @classmethod
    def _type_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _TYPE_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a type name; expected module.Class as skops names it, "
                    "such as sklearn.preprocessing._function_transformer.FunctionTransformer"
                )
        return v

    @field_validator("pass_env")
    @classmethod
    def _env_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name.startswith("DRIFTWATCH_"):
                raise ValueError(
                    f"{name}: DRIFTWATCH_* are the service's settings and the job's contract, "
                    "never passed through"
                )
        return v

    @field_validator("cron")
    @classmethod
    def _crontab(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"expected a crontab line such as '0 3 * * 0': {exc}") from None
        return v

    @model_validator(mode="after")
    def _gates_fit_task(self) -> ModelRetrainConfig:
        known = TASK_METRICS[self.task]
        unknown = sorted(set(self.gates) - known)
        if unknown:
            raise ValueError(
                f"gates: {', '.join(unknown)} not a {self.task} metric; "
                f"expected some of {', '.join(sorted(known))}"
            )
        if not self.gates:
            raise ValueError("gates: at least one metric gate is needed")
        return self


class KubernetesConfig(Strict):
    """``retrain.kubernetes``: where and how the ``kubernetes`` executor launches Jobs."""

    namespace: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    template: str | None = Field(default=None, description="a YAML file holding a batch/v1 Job")
    template_configmap: str | None = Field(
        default=None, pattern=r"^[a-z0-9.-]+/[-._a-zA-Z0-9]+$", description="NAME/KEY"
    )
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    result_path: str | None = Field(
        default=None, description="default: the container's termination-message path"
    )
    ttl_seconds: int = Field(default=86400, gt=0)
    resync: Duration = Field(default=300.0, gt=0)
    request_timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("template")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import yaml

        try:
            with open(v, encoding="utf-8") as f:
                job = yaml.safe_load(f)
        except OSError as exc:
            raise ValueError(f"cannot read the Job template: {exc}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"the Job template is not YAML: {yaml_problem(exc)}") from None
        if not isinstance(job, dict) or job.get("kind") != "Job":
            raise ValueError(f"{v} does not hold a batch/v1 Job")
        return v

    @model_validator(mode="after")
    def _one_template(self) -> KubernetesConfig:
        if (self.template is None) == (self.template_configmap is None):
            raise ValueError("give exactly one of template (a file) or template_configmap")
        return self


class RetrainConfig(Strict):
    executor: Literal["local", "kubernetes", "fake"] = Field(
        default="local", description="local, kubernetes (settings in retrain.kubernetes) or fake"
    )
    kubernetes: KubernetesConfig | None = None
    workdir: str = "./driftwatch-runs"
    keep_finished: Duration = Field(
        default=86400.0,
        ge=0,
        description="how long a final run's exported data and job directories stay in workdir",
    )
    artifacts_uri: str = "./driftwatch-models"
    data_uri: str | None = Field(
        default=None,
        min_length=1,
        description="where jobs read a run's exported data, e.g. s3://bucket/runs "
        "(uploaded from workdir); unset: the export in workdir itself",
    )
    tick: Duration = Field(default=5.0, gt=0)
    exports: int = Field(
        default=2,
        ge=1,
        le=32,
        description="runs' training-data exports at once; each holds a share of its "
        "model's archive in memory, and runs beyond it wait for a free one",
    )
    command: list[str] = Field(
        default_factory=lambda: ["python", "-m", "retrain.trainer"], min_length=1
    )

    @model_validator(mode="after")
    def _kubernetes_settings(self) -> RetrainConfig:
        if self.executor == "kubernetes" and self.kubernetes is None:
            raise ValueError(
                "kubernetes: required when executor is kubernetes (namespace, template)"
            )
        # A finished Job must outlive a few ticks, or its result could be collected unread.
        if self.kubernetes is not None and self.kubernetes.ttl_seconds < 10 * self.tick:
            raise ValueError(
                f"kubernetes.ttl_seconds: expected at least 10 ticks ({10 * self.tick:g} s)"
            )
        return self
