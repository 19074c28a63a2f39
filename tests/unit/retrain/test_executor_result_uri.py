"""A trainer's ``model_uri`` must lie inside its run's ``output_uri``: the result is
untrusted input, and what it names becomes a registry version others load."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrain.executors.base import artifact_outside

OUT = "s3://models/fraud/run-3/"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://models/fraud/run-3/model.skops",
        "s3://models/fraud/run-3/sub/dir/model.skops",
        "s3://models/fraud/run-3//model.skops",
        "s3://models/fraud/run-3/./model.skops",
        "S3://models/fraud/run-3/model.skops",
    ],
)
def test_an_artifact_inside_the_output_is_accepted(uri: str) -> None:
    assert artifact_outside(uri, OUT) is None


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("s3://models/fraud/run-2/model.skops", "not below it"),
        ("s3://models/fraud/run-3", "not below it"),
        ("s3://models/fraud/run-3/", "not below it"),
        ("s3://models/fraud/run-30/model.skops", "not below it"),
        ("s3://models/fraud/run-3/../run-2/model.skops", "'..'"),
        ("s3://models/fraud/run-3/%2e%2e/run-2/model.skops", "'..'"),
        ("s3://other-bucket/fraud/run-3/model.skops", "another scheme or location"),
        ("gs://models/fraud/run-3/model.skops", "another scheme or location"),
        ("file:///models/fraud/run-3/model.skops", "another scheme or location"),
        ("/models/fraud/run-3/model.skops", "another scheme or location"),
        ("s3://models/fraud/run-3/model.skops?versionId=1", "query or fragment"),
        ("s3://models/fraud/run-3/model\x00.skops", "NUL"),
    ],
)
def test_an_artifact_elsewhere_is_refused_with_the_reason(uri: str, why: str) -> None:
    reason = artifact_outside(uri, OUT)
    assert reason is not None and reason.startswith(f"model_uri {uri!r} is outside"), reason
    assert why in reason, reason


def test_local_paths_and_file_urls_are_one_scheme_and_symlinks_are_followed(
    tmp_path: Path,
) -> None:
    out = tmp_path / "models" / "fraud" / "run-3"
    out.mkdir(parents=True)
    assert artifact_outside(str(out / "model.skops"), f"{out}/") is None
    assert artifact_outside(f"file://{out}/model.skops", f"{out}/") is None
    assert artifact_outside(str(out / "model.skops"), f"file://{out}/") is None
    (tmp_path / "secret").mkdir()
    (out / "link").symlink_to(tmp_path / "secret")
    reason = artifact_outside(str(out / "link" / "model.skops"), f"{out}/")
    assert reason is not None and "symbolic link" in reason
    assert "'..'" in (artifact_outside(f"{out}/../run-2/model.skops", f"{out}/") or "")
