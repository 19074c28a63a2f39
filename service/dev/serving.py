"""The demo's and the benches' served stream: a scenario's events, each prediction made
by :class:`service.dev.model_server.ModelServer` through the ``file`` router's split.

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
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from consumers.synthetic import SyntheticPlan
from retrain.errors import ArtifactError, RouterError
from retrain.rollout.base import Target
from retrain.rollout.file import FileRouter
from service.dev.concept import (
    CONCEPT,
    ConceptStream,
    Era,
    Scenario,
    champion_artifact,
    check_model,
)
from service.dev.errors import ServingError
from service.dev.model_server import REREAD_MS, ModelServer

TIMINGS = 3  # scoring calls timed per block (see ServedStream._serve)


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
