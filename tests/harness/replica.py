"""``driftwatch run`` as one of several replicas, with a scripted canary analysis.

``python -m tests.harness.replica CONFIG`` runs the service's own ``run`` command
(consumer, leader elector, scheduler and its ``rollout`` job) on CONFIG, with two
seams of the rollout wiring replaced before it is built:

- the analysis: the live one judges minutes of traffic stamped per version; this
  one counts 1000 canary events, every check passing, once the ``file`` router's
  JSON serves the span's weight, and none while a file ``hold-<weight>`` exists
  beside that JSON (the step holds: a test keeps the leader at a step by it);
- each router is wrapped to append every call that changes the split
  (``set_weights``, ``promote``, ``rollback``) to ``calls`` beside that JSON, with
  this process's id: which replica acted, and in what order.

Everything else is the service as it ships: which replica ticks the rollout is the
leader elector's decision alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from drift.canary import Check, Outcome
from retrain.rollout.base import Router
from retrain.rollout.file import load
from retrain.rollout.span import Analyse, AnalysisSettings, Span
from service.config import Config, load_config
from tests.harness.rollout import KillingRouter


def held_analysis(split: Path) -> Analyse:
    def analyse(session: Session, span: Span, settings: AnalysisSettings) -> list[Check]:
        served = load(split)
        applied = served is not None and served.canary_percent == span.canary_percent
        held = (split.parent / f"hold-{span.canary_percent}").exists()
        n = 1000 if applied and not held else 0
        return [
            Check("sample_ratio", Outcome.PASS, 0.5, 0.001, n, 9000, "split as told"),
            Check("prediction_divergence", Outcome.PASS, 0.01, 0.1, n, 9000, "pass"),
        ]

    return analyse


def recording_routers(
    build: Callable[[Config], dict[str, Router]], calls: Path
) -> Callable[[Config], dict[str, Router]]:
    def routers(cfg: Config) -> dict[str, Router]:
        return {name: KillingRouter(r, "none", calls) for name, r in build(cfg).items()}

    return routers


def main(config: str) -> int:
    from service import cli
    from service.wiring import rollouts

    cfg = load_config(config, env={})
    section = cfg.models["fraud"].rollout.file
    assert section is not None, "the replica harness needs fraud's file router"
    split = Path(section.path)
    analyse = held_analysis(split)
    rollouts.analysis = lambda: analyse
    calls = split.parent / "calls"
    rollouts.build_routers = recording_routers(rollouts.build_routers, calls)  # type: ignore[assignment]
    return cli.main(["run", "--config", config])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
