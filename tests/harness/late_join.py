"""The late-label join as a real process that kills itself at a scripted step.

``python -m tests.harness.late_join CONFIG KILL`` builds the service's late-label
job from CONFIG (whatever its ``late_labels.enabled`` says) and runs it until a
run joins nothing more, then prints the outcomes it committed as one JSON line.
KILL is ``none`` or ``STEP:N``: the process sends itself SIGKILL at the N-th
time the job reaches STEP (``read``: the archive read, nothing written;
``written``: the batch's SQL written, not committed; ``committed``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable

from db.session import make_engine, make_session_factory
from service.config import load_config
from service.wiring.monitoring import build_late_labels


def killer(kill: str) -> Callable[[str], None]:
    step, _, nth = kill.partition(":")
    seen: Counter[str] = Counter()

    def on_step(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)

    return on_step


def main(config: str, kill: str) -> int:
    cfg = load_config(config)
    late = cfg.late_labels.model_copy(update={"enabled": True})
    cfg = cfg.model_copy(update={"late_labels": late})
    engine = make_engine(cfg.database.url)
    on_step = None if kill == "none" else killer(kill)
    job = build_late_labels(cfg, make_session_factory(engine), on_step=on_step)
    assert job is not None, "no model has archived, joined labels"
    total: Counter[str] = Counter()
    while done := job.tick():
        total.update({str(k): v for k, v in done.items()})
    print(json.dumps(dict(total)), flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
