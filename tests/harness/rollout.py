"""The rollout loop as a real process that kills itself at a scripted router call.

``python -m tests.harness.rollout CONFIG SCRIPT KILL`` builds the service's rollout
driver from CONFIG (a ``file`` router) and ticks it until no rollout is active.
SCRIPT is the analysis: ``healthy`` (every check passes) or ``fail`` (the
prediction divergence fails at 25%). Its checks count canary events only while
the file serves the span's weight, as the live stream would: a split that was
committed but never applied gets no canary events, and the step holds.

KILL is ``none`` or ``N:before`` / ``N:after``: the process sends itself SIGKILL
just before, or just after, its N-th router call that changes the split
(``set_weights``, ``promote``, ``rollback``), whether made after a commit or
inside a step's transaction. Every such call is appended to ``DIR/calls`` (DIR:
the directory of CONFIG) before it is made.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from drift.canary import Check, Outcome
from retrain.rollout.base import Progress, Router, Split, Target
from retrain.rollout.file import load
from retrain.rollout.span import AnalysisSettings, Span


class KillingRouter:
    def __init__(self, router: Router, kill: str, log: Path) -> None:
        self.router = router
        self.log = log
        self.calls = 0
        at, _, when = kill.partition(":")
        self.at, self.when = (int(at), when) if kill != "none" else (0, "")

    def _call(self, method: str, call: Callable[[], Any], note: str) -> Any:
        self.calls += 1
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(f"{method} {note} {os.getpid()}\n")
        if self.calls == self.at and self.when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = call()
        if self.calls == self.at and self.when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        split: Split = self._call(
            "set_weights",
            lambda: self.router.set_weights(stable, canary, canary_percent),
            str(canary_percent),
        )
        return split

    def get_weights(self) -> Split:
        return self.router.get_weights()

    def promote(self, candidate: Target) -> Progress:
        done: Progress = self._call(
            "promote", lambda: self.router.promote(candidate), candidate.version
        )
        return done

    def rollback(self, stable: Target) -> Progress:
        done: Progress = self._call(
            "rollback", lambda: self.router.rollback(stable), stable.version
        )
        return done


def analysis(script: str, path: Path) -> Callable[[Session, Span, AnalysisSettings], list[Check]]:
    def analyse(session: Session, span: Span, settings: AnalysisSettings) -> list[Check]:
        served = load(path)
        applied = served is not None and served.canary_percent == span.canary_percent
        n = 1000 if applied else 0
        bad = script == "fail" and span.canary_percent == 25
        outcome = Outcome.FAIL if bad else Outcome.PASS
        return [
            Check("sample_ratio", Outcome.PASS, 0.5, 0.001, n, 9000, "split as told"),
            Check("prediction_divergence", outcome, 0.2 if bad else 0.01, 0.1, n, 9000, outcome),
        ]

    return analyse


def main(config: str, script: str, kill: str) -> None:
    from db.rollouts import RolloutRepository
    from db.session import make_engine, make_session_factory, transaction
    from service.config import load_config
    from service.wiring.rollouts import build_rollouts, build_routers

    cfg = load_config(config, env={})
    sessions = make_session_factory(make_engine(cfg.database.url))
    path = cfg.models["fraud"].rollout.file
    assert path is not None
    routers = {
        "fraud": KillingRouter(build_routers(cfg)["fraud"], kill, Path(config).parent / "calls")
    }
    driver = build_rollouts(
        cfg, sessions, analyse=analysis(script, Path(path.path)), routers=routers
    )
    while True:
        driver.tick()
        with transaction(sessions) as s:
            if not RolloutRepository(s).active():
                return
        time.sleep(0.01)


if __name__ == "__main__":
    main(*sys.argv[1:4])
