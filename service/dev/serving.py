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

:class:`ServedStream` is the scenario producer's source (``produce``) with every
prediction made by a server: its events carry the version served as
``model_version``, which is what the rollout analysis splits the stream by, and the
scenario's ground-truth labels (delayed by ``produce`` as for any stream). With
``measure_latency`` (``--measure-latency``) they carry the measured scoring time as
``latency_ms`` (a version scores a block of requests in one call; each request's is
its share of that call's time); by default they carry none, and the rollout's latency
check says so and holds nothing. That figure is a model's compute per row, in
microseconds, not a request's latency: a gradient-boosting refit of a linear champion
measures about 5 times slower (0.011 against 0.002 ms) where a real server's
per-request overhead would hide it, and on a shared machine the scheduler's noise
swings it both ways (ratios 0.2 to 5.4 measured in the closed loop), so the demo and
the closed loop leave it out rather than roll a healthy candidate back by chance.

Manual use, producing to the config's topics::

    python -m service.dev.serving --config FILE --router-file PATH \\
        --scenario concept|interaction --rate R --duration D [--drift-at T] [--realtime] \\
        [--champion FILE]

With no file at ``PATH`` the scenario's champion is trained (or loaded from
``--champion``, by default from ``driftwatch-models/MODEL/``) and written there as the
stable version.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from consumers.synthetic import SyntheticPlan
from retrain.artifacts import load_model
from retrain.errors import ArtifactError, RouterError
from retrain.rollout.base import Target
from retrain.rollout.file import FileRouter, RolloutFile, load
from service.dev.concept import (
    CONCEPT,
    FEATURES,
    NUMERICAL,
    ConceptStream,
    Era,
    Scenario,
    champion_artifact,
    check_model,
    scores,
)
from service.dev.errors import ServingError

log = logging.getLogger(__name__)

REREAD_MS = 500.0
TIMINGS = 3  # scoring calls timed per block (see ServedStream._serve)


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


class ServedStream(ConceptStream):
    """The scenario's events with every prediction made by ``server``: the event's id is
    the request id, ``model_version`` the version served. Each version scores a block of
    rows at once, so a stream costs what :class:`ConceptStream` does per model."""

    def __init__(
        self,
        plan: SyntheticPlan,
        server: ModelServer,
        scenario: Scenario = CONCEPT,
        *,
        measure_latency: bool = False,
    ) -> None:
        super().__init__(plan, None, scenario)
        self.server = server
        self.measure_latency = measure_latency
        self.served: Counter[str] = Counter()  # events per version served
        # Per (era, model): the block's scores and each request's share of their time.
        self._by_model: dict[tuple[Era, str], tuple[list[float], float]] = {}

    def _load(self, block: int) -> None:
        super()._load(block)
        self._by_model.clear()

    def _serve(self, era: Era, row: int, event_id: str) -> tuple[str, float, float | None]:
        version = self.server.pick(event_id)
        key = (era, version.target.sha256.lower())
        block = self._by_model.get(key)
        if block is None:
            # One call's time on a busy machine is as much the scheduler's as the model's,
            # and a canary's few blocks at a small weight give the latency check one or two
            # of them: the fastest of TIMINGS calls is the model's own.
            elapsed_ms = math.inf
            for _ in range(TIMINGS if self.measure_latency else 1):
                began = time.perf_counter()
                scored = version.scores(self._frames[era]).tolist()
                elapsed_ms = min(elapsed_ms, (time.perf_counter() - began) * 1000.0)
            block = self._by_model[key] = (scored, round(elapsed_ms / len(scored), 6))
        self.served[version.target.version] += 1
        latency = block[1] if self.measure_latency else None
        return version.target.version, block[0][row], latency


def ensure_router_file(
    path: Path, model: str, scenario: Scenario, seed: int, version: str, champion_at: str | None
) -> None:
    """Write the scenario's champion as the stable version when there is no file yet."""
    if path.exists():
        return
    default = f"driftwatch-models/{model}/{scenario.champion_file}"
    champion = Path(champion_at or default).resolve()
    _, sha256 = champion_artifact(champion, seed, scenario)
    FileRouter(path, model).promote(Target(version, str(champion), sha256))
    print(f"{path}: stable {version} = {champion} (sha256 {sha256})")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m service.dev.serving",
        description="Produce a scenario's events, each scored by the version the file "
        "router's split picks for it.",
    )
    p.add_argument("--config", required=True, help="driftwatch YAML config (Kafka, topics)")
    p.add_argument("--router-file", required=True, help="the file router's JSON")
    p.add_argument("--scenario", choices=("concept", "interaction"), default="concept")
    p.add_argument("--model", help="the model to serve (default: the config's first)")
    p.add_argument("--rate", type=float, default=100.0, help="events per second")
    p.add_argument("--duration", default="60s", help="event-time span to produce")
    p.add_argument("--drift-at", help="event-time offset of the drift point, e.g. 30s")
    p.add_argument("--realtime", action="store_true", help="pace to --rate, wall-clock times")
    p.add_argument("--label-delay", help="labels come a random 0..this later, e.g. 5s")
    p.add_argument("--reread-ms", type=float, default=REREAD_MS, help="router file re-reads")
    p.add_argument("--stable-version", default="v1", help="the champion's version, if new")
    p.add_argument(
        "--champion",
        help="the champion's artifact, if new (trained there when absent; default "
        "driftwatch-models/MODEL/ and the scenario's file name)",
    )
    p.add_argument(
        "--measure-latency",
        action="store_true",
        help="stamp each request's share of its block's scoring time as latency_ms",
    )
    p.add_argument("--seed", type=int, default=7)
    return p


def _run(args: argparse.Namespace) -> int:
    from consumers.synthetic import produce
    from service.config import load_config
    from service.dev.scenarios import SCENARIOS
    from service.durations import parse_duration
    from service.errors import ConfigError
    from service.kafka_clients import make_producer

    cfg = load_config(args.config)
    specs = cfg.model_specs()
    name = args.model or next(iter(specs))
    if name not in specs:
        raise ConfigError([f"--model: {name!r} not in the config (have {list(specs)})"])
    problems = [f"models.{name}: {problem}" for problem in check_model(specs[name])]
    if problems:
        head = f"--scenario {args.scenario} needs the features of the demo's fraud model:"
        raise ConfigError([head, *problems])
    scenario = SCENARIOS[args.scenario]
    router_file = Path(args.router_file)
    ensure_router_file(router_file, name, scenario, args.seed, args.stable_version, args.champion)
    count = int(parse_duration(args.duration) * args.rate)
    # Simulated event time ends now, so no event is rejected as from the future.
    start = time.time() if args.realtime else time.time() - count / args.rate
    drift_at = parse_duration(args.drift_at) if args.drift_at else None
    plan = SyntheticPlan(specs[name], rate=args.rate, start=start, drift_at=drift_at,
                         seed=args.seed)  # fmt: skip
    server = ModelServer(router_file, name, reread_ms=args.reread_ms)
    stream = ServedStream(plan, server, scenario, measure_latency=args.measure_latency)
    producer = make_producer(cfg.kafka)
    try:
        report = produce(
            producer,
            [stream],
            count,
            cfg.kafka.topics.predictions,
            cfg.kafka.topics.labels,
            realtime=args.realtime,
            label_delay=parse_duration(args.label_delay) if args.label_delay else 0.0,
            seed=args.seed,
        )
    finally:
        producer.close(timeout=10)
    versions = ", ".join(f"{v}: {n}" for v, n in sorted(stream.served.items()))
    print(f"sent {report.sent} prediction events and {report.labels} labels ({versions})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from service.errors import ConfigError, ServiceError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except (ServiceError, ServingError, RouterError, ArtifactError) as exc:
        print(f"serving: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
