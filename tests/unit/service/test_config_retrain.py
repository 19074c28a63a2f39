"""The ``retrain`` section and ``models.*.retrain``: defaults and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.config import load_config
from service.errors import ConfigError
from service.wiring.retraining import model_settings
from tests.unit.service.test_config import BASE, mutated, problems, write


def with_retrain(**retrain: Any) -> dict[str, Any]:
    raw = mutated("models.fraud.retrain", retrain)
    return raw


def test_defaults_are_the_contracts(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE), {})
    r, top = cfg.models["fraud"].retrain, cfg.retrain
    assert (r.enabled, r.drift_windows, r.min_new_labels, r.cooldown, r.data_window) == (
        False,
        3,
        1000,
        3600.0,
        7 * 86400.0,
    )
    assert (r.holdout_share, r.min_holdout, r.train_timeout, r.validate_timeout) == (
        0.2,
        200,
        3600.0,
        1800.0,
    )
    assert {k: (g.min_delta, g.max_degradation) for k, g in r.gates.items()} == {
        "accuracy": (0.0, None)
    }
    assert (top.executor, top.workdir, top.artifacts_uri, top.tick, top.command) == (
        "local",
        "./driftwatch-runs",
        "./driftwatch-models",
        5.0,
        ["python", "-m", "retrain.trainer"],
    )


@pytest.mark.parametrize(
    ("retrain", "expected"),
    [
        (
            {"cron": "every sunday"},
            "config: models.fraud.retrain.cron: expected a crontab",
        ),
        (
            {"gates": {"mae": {"min_delta": 0}}},
            "config: models.fraud.retrain: gates: mae not a classification metric",
        ),
        (
            {"gates": {"accuracy": {}}},
            "config: models.fraud.retrain.gates.accuracy: give min_delta, max_degradation or both",
        ),
        ({"holdout_share": 1.5}, "config: models.fraud.retrain.holdout_share:"),
        ({"cooldown": "soon"}, "config: models.fraud.retrain.cooldown:"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, retrain: dict[str, Any], expected: str) -> None:
    (line,) = problems(tmp_path, with_retrain(**retrain))
    assert line.startswith(expected), line


def test_a_slice_feature_must_be_a_categorical_feature(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, with_retrain(slice_feature="amount")), {})
    with pytest.raises(ConfigError) as info:
        model_settings(cfg)
    assert info.value.problems == [
        "config: models.fraud.retrain.slice_feature: 'amount' is not a categorical feature "
        "of the model (have ['country'])"
    ]
    ok = load_config(write(tmp_path, with_retrain(slice_feature="country")), {})
    gates = model_settings(ok)["fraud"].gates
    assert gates.slice_max_degradation == 0.05


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["TRAINER-TOKEN"], "config: models.fraud.retrain.pass_env: 'TRAINER-TOKEN'"),
        (["DRIFTWATCH_DATABASE__URL"], "config: models.fraud.retrain.pass_env: "),
    ],
)
def test_pass_env_names_are_checked(tmp_path: Path, names: list[str], expected: str) -> None:
    (line,) = problems(tmp_path, with_retrain(pass_env=names))
    assert line.startswith(expected), line


def test_pass_env_is_for_the_local_executor(tmp_path: Path) -> None:
    ok = load_config(write(tmp_path, with_retrain(pass_env=["AWS_PROFILE"])), {})
    assert model_settings(ok)["fraud"].pass_env == ("AWS_PROFILE",)
    raw = with_retrain(pass_env=["AWS_PROFILE"])
    template = tmp_path / "job.yaml"
    template.write_text("apiVersion: batch/v1\nkind: Job\n", encoding="utf-8")
    raw["retrain"] = {"executor": "kubernetes",
                      "kubernetes": {"namespace": "ml", "template": str(template)}}  # fmt: skip
    cfg = load_config(write(tmp_path, raw), {})
    with pytest.raises(ConfigError) as info:
        model_settings(cfg)
    (line,) = info.value.problems
    assert line.startswith("config: models.fraud.retrain.pass_env: only the local executor")


@pytest.mark.parametrize(
    "name", ["../etc", "a/b", ".", "..", "-fraud", "fraud-", "frau d", "fräud", "x" * 64, "ﬁ"]
)
def test_a_model_name_that_cannot_be_a_path_or_a_label_is_refused(
    tmp_path: Path, name: str
) -> None:
    raw = mutated("models", {name: BASE["models"]["fraud"]})
    (line,) = problems(tmp_path, raw)
    assert line.startswith(f"config: models: {name!r}: a model name must be"), line


@pytest.mark.parametrize("name", ["fraud", "Fraud", "fraud_v2", "fraud.eu-1", "x" * 63, "7"])
def test_model_names_of_label_syntax_are_accepted(tmp_path: Path, name: str) -> None:
    cfg = load_config(write(tmp_path, mutated("models", {name: BASE["models"]["fraud"]})), {})
    assert list(cfg.models) == [name]


def test_keep_finished_defaults_to_a_day_and_names_the_key(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, BASE), {}).retrain.keep_finished == 86400.0
    raw = mutated("retrain", {"keep_finished": "-1s"})
    (line,) = problems(tmp_path, raw)
    assert line.startswith("config: retrain.keep_finished:"), line
