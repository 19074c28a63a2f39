"""``models.<name>.rollout``: defaults, the router's section, steps; bad values stop the
start-up with a line that names the key."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from retrain.rollout import make_router
from retrain.rollout.file import FileRouter
from retrain.rollout.settings import DEFAULT_STEPS, RolloutStep
from tests.unit.service.test_config import BASE, load, problems


def with_rollout(rollout: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw["models"]["fraud"]["rollout"] = rollout
    return raw


def test_defaults_are_off_manual_and_four_steps(tmp_path: Path) -> None:
    rollout = load(tmp_path).models["fraud"].rollout
    assert (rollout.enabled, rollout.router) == (False, "manual")
    settings = rollout.settings("fraud", "regression")
    assert settings.steps == DEFAULT_STEPS
    assert [s.weight for s in settings.steps] == [5, 25, 50, 100]
    assert settings.max_failed_checks == 1 and settings.task == "regression"


def test_a_file_rollout_builds_its_router_and_steps(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        with_rollout(
            {
                "enabled": True,
                "router": "file",
                "file": {"path": str(tmp_path / "split.json")},
                "steps": [
                    {"weight": 10, "min_duration": "5m", "min_events": 100},
                    {"weight": 100, "min_duration": "1h"},
                ],
                "step_deadline": "30m",
                "max_failed_checks": 2,
                "analysis": {"margin": 0.05, "srm_alpha": 0.0001, "latency_min_samples": 50},
            }
        ),
    )
    rollout = cfg.models["fraud"].rollout
    settings = rollout.settings("fraud", "classification")
    assert settings.steps == (
        RolloutStep(10, timedelta(minutes=5), 100),
        RolloutStep(100, timedelta(hours=1), 500),
    )
    assert settings.step_deadline == timedelta(minutes=30)
    assert (settings.analysis.margin, settings.analysis.srm_alpha) == (0.05, 0.0001)
    assert settings.analysis.latency_min_samples == 50
    router = make_router(rollout.router, rollout.sections(), model="fraud")
    assert isinstance(router, FileRouter) and router.path == tmp_path / "split.json"


def test_cluster_sections_build_their_routers_settings(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        with_rollout(
            {
                "router": "istio",
                "istio": {
                    "namespace": "ml",
                    "virtual_service": "fraud",
                    "stable": {"host": "fraud", "subset": "stable"},
                    "canary": {"host": "fraud", "subset": "canary"},
                    "request_timeout": "5s",
                },
                "replicas": {
                    "namespace": "ml",
                    "stable_deployment": "a",
                    "canary_deployment": "b",
                },
            }
        ),
    )
    sections = cfg.models["fraud"].rollout.sections()
    assert sections.istio is not None and sections.istio.canary.subset == "canary"
    assert sections.istio.request_timeout == 5.0
    assert sections.replicas is not None and sections.replicas.total_replicas == 4
    assert sections.file is None


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [
        (
            {"router": "nginx"},
            "config: models.fraud.rollout.router: unknown router 'nginx'; expected one of "
            "file, replicas, gateway-api, istio, kserve, manual, none, fake",
        ),
        (
            {"router": "file"},
            "config: models.fraud.rollout.file: required when rollout.router is file",
        ),
        (
            {"router": "gateway-api"},
            "config: models.fraud.rollout.gateway_api: required when rollout.router is gateway-api",
        ),
        (
            {"router": "kserve", "kserve": {"namespace": "ml"}},
            "config: models.fraud.rollout.kserve.inference_service: missing",
        ),
        (
            {"steps": [{"weight": 50}, {"weight": 25}, {"weight": 100}]},
            "config: models.fraud.rollout.steps: weights must increase from step to step, "
            "got [50, 25, 100]",
        ),
        (
            {"steps": [{"weight": 5}, {"weight": 50}]},
            "config: models.fraud.rollout.steps: the last step must send all traffic "
            "(weight 100), got [5, 50]",
        ),
        (
            {"steps": [{"weight": 0}, {"weight": 100}]},
            "config: models.fraud.rollout.steps.0.weight: Input should be greater than or "
            "equal to 1",
        ),
        (
            {"steps": [{"weight": 100, "min_events": -1}]},
            "config: models.fraud.rollout.steps.0.min_events: Input should be greater than or "
            "equal to 0",
        ),
        (
            {"steps": []},
            "config: models.fraud.rollout.steps: List should have at least 1 item "
            "after validation, not 0",
        ),
        (
            {"max_failed_checks": 0},
            "config: models.fraud.rollout.max_failed_checks: Input should be greater than or "
            "equal to 1",
        ),
        (
            {"step_deadline": "soon"},
            "config: models.fraud.rollout.step_deadline: expected a duration such as 30s, 5m or 1h",
        ),
        (
            {"analysis": {"alpha": 2}},
            "config: models.fraud.rollout.analysis.alpha: Input should be less than 1",
        ),
        (
            {"analysis": {"latency_percentile": 100}},
            "config: models.fraud.rollout.analysis.latency_percentile: Input should be less "
            "than 100",
        ),
        (
            {"analysis": {"latency_max_ratio": 1}},
            "config: models.fraud.rollout.analysis.latency_max_ratio: Input should be greater "
            "than 1",
        ),
        (
            {"analysis": {"latency_min_samples": 0}},
            "config: models.fraud.rollout.analysis.latency_min_samples: Input should be greater "
            "than or equal to 1",
        ),
        ({"canary": 5}, "config: models.fraud.rollout.canary: unknown key"),
    ],
)
def test_bad_rollout_settings_name_their_key(
    tmp_path: Path, rollout: dict[str, Any], expected: str
) -> None:
    assert problems(tmp_path, with_rollout(rollout)) == [expected]
