"""A model server for the demo and the benches: the ``file`` router's split, served.

:class:`ModelServer` serves one model. It reads the ``file`` router's JSON
(``retrain/rollout/file.py``), loads the stable and the canary artifacts (skops,
sha256 and trusted types checked by :func:`retrain.artifacts.load_model`), and
answers each request with the version it served and that version's score, the
probability of class "1" as :func:`service.dev.concept.scores` computes it.

- **Split**: a request goes to the canary when the bucket of its id is below the
  file's ``canary_percent``. The bucket is the first 8 bytes of the id's sha256
  read as a number, scaled to [0, 100): the same id always gets the same version
  at a given weight, and an id served by the canary at 5% stays with it at 25%.
  The hash is not salted per rollout: the same ids lead every canary.
- **Re-reading**: the file is read again at most every ``reread_ms`` of the
  server's clock, and at once by :meth:`ModelServer.refresh`; the router replaces
  it atomically, so a read sees a whole file. A new content is applied at once
  (promotion and rollback included). A file that goes missing or turns
  unreadable after a good read keeps the split read before, with an error logged.
- **Loading**: models are cached by sha256 (a promoted canary is not loaded
  again) and dropped once the file no longer names them. A version whose artifact
  does not load (missing, sha256 mismatch, an untrusted type) is an error for that
  version only: it is logged, kept in :attr:`ModelServer.failures`, and its share
  of requests goes to the other version, stamped as such. The rollout's
  sample-ratio check sees that as a mismatch, as it should. The load is tried
  again when the file's content changes. With neither version loadable the server
  raises :class:`~service.dev.errors.ServingError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.artifacts import load_model
from retrain.errors import ArtifactError, RouterError
from retrain.rollout.base import Target
from retrain.rollout.file import RolloutFile, load
from service.dev.concept import FEATURES, NUMERICAL, scores
from service.dev.errors import ServingError

log = logging.getLogger(__name__)

REREAD_MS = 500.0


def bucket(request_id: str) -> float:
    """Where ``request_id`` falls in [0, 100): the canary takes the ids below its percent."""
    head = hashlib.sha256(request_id.encode("utf-8")).digest()[:8]
    return int.from_bytes(head, "big") * 100.0 / 2**64


@dataclass(frozen=True, slots=True)
class Version:
    """A registry version the server can serve, with its loaded model."""

    target: Target
    model: Any

    def scores(self, frame: pd.DataFrame) -> Any:
        """The model's probability of class "1" per row of ``frame`` (a numpy array)."""
        return scores(self.model, frame)


@dataclass(frozen=True, slots=True)
class Served:
    """The answer to one request: the registry version that served it and its score."""

    version: str
    prediction: float


def features_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Requests' features as the model takes them: a missing numerical (None) is NaN."""
    frame = pd.DataFrame(list(rows), columns=list(FEATURES))
    frame[list(NUMERICAL)] = frame[list(NUMERICAL)].astype(float)
    return frame


def _monotonic() -> float:
    return time.monotonic()


class ModelServer:
    """One model's stable and canary versions, split as the ``file`` router says."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: str,
        *,
        reread_ms: float = REREAD_MS,
        clock: Callable[[], float] = _monotonic,
        extra_trusted: Iterable[str] = (),
    ) -> None:
        if reread_ms < 0:
            raise ValueError(f"reread_ms must be at least 0, got {reread_ms}")
        self.path = Path(path)
        self.model = model
        self._interval = reread_ms / 1000.0
        self._clock = clock
        self._extra_trusted = tuple(extra_trusted)
        self._state: RolloutFile | None = None
        self._read_at: float | None = None
        self._models: dict[str, Any] = {}  # by sha256
        self._failures: dict[str, str] = {}  # by version
        self._stable: Version | None = None
        self._canary: Version | None = None

    @property
    def state(self) -> RolloutFile | None:
        """The rollout file as last applied (None before the first read)."""
        return self._state

    @property
    def failures(self) -> Mapping[str, str]:
        """Why a version of the current file is not served, by version."""
        return dict(self._failures)

    def refresh(self) -> bool:
        """Read the file now and apply it if its content changed; whether it did."""
        self._read_at = self._clock()
        try:
            state = load(self.path)
        except RouterError as exc:
            if self._state is None:
                raise ServingError(f"model server {self.model}: {exc}") from exc
            log.error("model server %s: %s; serving the split read before", self.model, exc)
            return False
        if state is None:
            if self._state is None:
                raise ServingError(f"model server {self.model}: no rollout file at {self.path}")
            log.error("model server %s: %s is gone; serving the split read before",
                      self.model, self.path)  # fmt: skip
            return False
        if state.model != self.model:
            raise ServingError(
                f"model server {self.model}: {self.path} holds model {state.model!r}"
            )
        if state == self._state:
            return False
        self._apply(state)
        return True

    def pick(self, request_id: str) -> Version:
        """The version that serves ``request_id`` (the file re-read first when due)."""
        if self._read_at is None or self._clock() - self._read_at >= self._interval:
            self.refresh()
        state = self._state
        assert state is not None  # refresh() applied a file or raised
        wanted, other = self._stable, self._canary
        if state.canary is not None and bucket(request_id) < state.canary_percent:
            wanted, other = other, wanted
        chosen = wanted if wanted is not None else other
        assert chosen is not None  # _apply() refuses a file with neither version loaded
        return chosen

    def serve(self, request_id: str, features: Mapping[str, Any]) -> Served:
        """Score one request with the version its id picks."""
        version = self.pick(request_id)
        (prediction,) = version.scores(features_frame([features])).tolist()
        return Served(version.target.version, prediction)

    def serve_batch(self, request_ids: Sequence[str], frame: pd.DataFrame) -> list[Served]:
        """Score the rows of ``frame``, row i for ``request_ids[i]``; one model call per
        version served."""
        if len(request_ids) != len(frame):
            raise ValueError(f"{len(request_ids)} request ids for {len(frame)} rows")
        picked = [self.pick(request_id) for request_id in request_ids]
        rows: dict[str, list[int]] = {}
        for i, version in enumerate(picked):
            rows.setdefault(version.target.version, []).append(i)
        predictions = [0.0] * len(picked)
        for indexes in rows.values():
            version = picked[indexes[0]]
            for i, score in zip(indexes, version.scores(frame.iloc[indexes]).tolist(), strict=True):
                predictions[i] = score
        return [Served(v.target.version, p) for v, p in zip(picked, predictions, strict=True)]

    def _apply(self, state: RolloutFile) -> None:
        targets = [t for t in (state.stable, state.canary) if t is not None]
        failures: dict[str, str] = {}
        loaded = {t.version: self._load(t, failures) for t in targets}
        stable = loaded[state.stable.version]
        canary = None if state.canary is None else loaded[state.canary.version]
        if stable is None and canary is None:
            raise ServingError(
                f"model server {self.model}: no version of {self.path} loads: "
                + "; ".join(failures.values())
            )
        self._state, self._stable, self._canary = state, stable, canary
        self._failures = failures
        keep = {t.sha256.lower() for t in targets}
        self._models = {sha: m for sha, m in self._models.items() if sha in keep}
        log.info(
            "model server %s: stable %s, canary %s at %d%%%s",
            self.model,
            state.stable.version,
            state.canary.version if state.canary else None,
            state.canary_percent,
            "".join(f"; {v} NOT served: {why}" for v, why in failures.items()),
        )

    def _load(self, target: Target, failures: dict[str, str]) -> Version | None:
        sha256 = target.sha256.lower()
        model = self._models.get(sha256)
        if model is None:
            try:
                model = load_model(target.uri, sha256, self._extra_trusted)
            except ArtifactError as exc:
                failures[target.version] = str(exc)
                log.error("model server %s: version %s does not load, its share goes to the "
                          "other version: %s", self.model, target.version, exc)  # fmt: skip
                return None
            self._models[sha256] = model
        return Version(target, model)
