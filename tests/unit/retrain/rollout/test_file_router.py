"""The ``file`` router: the documented format, atomic replacement, idempotence, and
errors that name the path."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split, Target
from retrain.rollout.file import FileRouter, load

V1 = Target("v1", "file:///models/fraud/v1.skops", "a" * 64)
V2 = Target("v2", "file:///models/fraud/v2.skops", "b" * 64)
NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def router(path: Path) -> FileRouter:
    return FileRouter(path, "fraud", clock=lambda: NOON)


def test_a_missing_file_is_stable_only_at_zero_percent(tmp_path: Path) -> None:
    assert router(tmp_path / "split.json").get_weights() == Split(0, None, None)
    assert load(tmp_path / "split.json") is None


def test_set_weights_writes_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    assert router(path).set_weights(V1, V2, 25) == Split(25, "v1", "v2")
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "model": "fraud",
        "stable": {"version": "v1", "uri": V1.uri, "sha256": V1.sha256},
        "canary": {"version": "v2", "uri": V2.uri, "sha256": V2.sha256},
        "canary_percent": 25,
        "updated_at": "2026-12-04T12:00:00Z",
    }
    assert router(path).get_weights() == Split(25, "v1", "v2")
    assert path.stat().st_mode & 0o777 == 0o644  # the serving layer may be another user


def test_promote_and_rollback_leave_one_version_and_no_canary(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    r = router(path)
    r.set_weights(V1, V2, 50)
    assert r.promote(V2) == Progress(True)
    state = load(path)
    assert state is not None and (state.stable, state.canary, state.canary_percent) == (V2, None, 0)
    r.set_weights(V2, V1, 5)
    assert r.rollback(V2) == Progress(True)
    assert r.get_weights() == Split(0, "v2", None)


def test_a_repeated_call_does_not_rewrite_the_file(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    router(path).set_weights(V1, V2, 25)
    before = path.stat().st_ino, path.read_bytes()
    later = FileRouter(path, "fraud", clock=lambda: NOON.replace(hour=13))
    assert later.set_weights(V1, V2, 25) == Split(25, "v1", "v2")
    assert (path.stat().st_ino, path.read_bytes()) == before  # not replaced, same stamp
    later.promote(V2)
    inode = path.stat().st_ino
    assert later.promote(V2) == Progress(True)
    assert path.stat().st_ino == inode
    assert load(path).updated_at == "2026-12-04T13:00:00Z"  # type: ignore[union-attr]


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """Large documents (a long URI) make a write that is not atomic visible to a reader
    that reads while it writes; every read here parses and is one of the two states."""
    path = tmp_path / "split.json"
    big = Target("v2", "file:///models/" + "x" * 200_000, "b" * 64)
    r = router(path)
    r.set_weights(V1, big, 0)
    stop = threading.Event()
    seen: list[int] = []
    failures: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(json.loads(path.read_text(encoding="utf-8"))["canary_percent"])
            except ValueError as exc:
                failures.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            r.set_weights(V1, big, 5 if i % 2 else 50)
    finally:
        stop.set()
        reader.join()
    assert failures == []
    assert set(seen) <= {0, 5, 50} and seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.json"]  # no temp files left


def document(**changes: object) -> str:
    good = {"model": "fraud", "stable": {"version": "v1", "uri": "u", "sha256": "s"},
            "canary": None, "canary_percent": 0, "updated_at": "x"}  # fmt: skip
    return json.dumps({**good, **changes})


def test_the_base_of_the_corrupt_documents_is_valid(tmp_path: Path) -> None:
    (tmp_path / "split.json").write_text(document(), encoding="utf-8")
    assert router(tmp_path / "split.json").get_weights() == Split(0, "v1", None)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        document(stable=None),
        document(canary_percent=30),
        document(canary_percent=101),
        document(stable={"version": "v1", "uri": "", "sha256": "s"}),
    ],
    ids=["not-json", "not-an-object", "no-stable", "percent-without-canary", "percent-over-100",
         "empty-uri"],
)  # fmt: skip
def test_a_corrupt_file_is_a_fatal_error_naming_the_path(tmp_path: Path, content: str) -> None:
    path = tmp_path / "split.json"
    path.write_text(content, encoding="utf-8")
    for call in (router(path).get_weights, lambda: router(path).promote(V2)):
        with pytest.raises(RouterError) as info:
            call()
        assert str(path) in str(info.value) and not info.value.retriable
    assert path.read_text(encoding="utf-8") == content  # not overwritten


def test_a_file_of_another_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    FileRouter(path, "churn").set_weights(V1, V2, 5)
    with pytest.raises(RouterError, match="holds model 'churn', not 'fraud'") as info:
        router(path).get_weights()
    assert not info.value.retriable


def test_a_missing_directory_is_fatal_and_a_bad_percent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RouterError) as info:
        router(tmp_path / "nope" / "split.json").set_weights(V1, V2, 5)
    assert not info.value.retriable and "nope" in str(info.value)
    with pytest.raises(
        RouterError, match="canary_percent: expected an integer from 0 to 100, got 120"
    ):
        router(tmp_path / "split.json").set_weights(V1, V2, 120)
    assert not (tmp_path / "split.json").exists()
