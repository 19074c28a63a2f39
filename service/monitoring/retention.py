"""The retention job: what the tables keep, by ``retention.*`` (the rules that protect
rows whatever their age are in :mod:`db.retention`).

Each rule deletes in batches of ``retention.batch_size`` rows, each batch its own
transaction, at most ``retention.max_batches`` per rule and run: a backlog
(the first run on an old database) is worked off over several runs without ever
holding a long transaction. The archive's own retention (``archive.retention``)
runs in the archive maintenance job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from db.retention import RetentionRepository
from db.session import transaction
from service.config.scheduler import RetentionConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    age: Callable[[RetentionConfig], float]
    delete: Callable[[RetentionRepository, datetime, int], int]


RULES = (
    Rule("sketches", lambda c: c.sketches, RetentionRepository.sketches),
    Rule("performance_sketches", lambda c: c.sketches, RetentionRepository.performance_sketches),
    Rule("drift_reports", lambda c: c.reports, RetentionRepository.drift_reports),
    Rule("performance_reports", lambda c: c.reports, RetentionRepository.performance_reports),
    Rule(
        "concept_drift_alarms",
        lambda c: c.concept_drift_alarms,
        RetentionRepository.concept_drift_alarms,
    ),
    Rule("alert_events", lambda c: c.outbox, RetentionRepository.alert_events),
    Rule("idempotency_keys", lambda c: c.idempotency_keys, RetentionRepository.idempotency_keys),
    Rule("detector_states", lambda c: c.detector_states, RetentionRepository.detector_states),
)


class Retention:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        cfg: RetentionConfig,
        backfill: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``backfill`` is ``evaluation.backfill``: sketches of windows further back than
        that from their model's newest are never judged, so they go unreported."""
        self._sessions = sessions
        self._cfg = cfg
        self._clock = clock
        reach = timedelta(seconds=backfill)
        self._rules = (
            *RULES,
            Rule(
                "unjudged_sketches",
                lambda c: c.sketches,
                lambda repo, cutoff, limit: repo.unjudged_sketches(cutoff, limit, reach),
            ),
        )

    def tick(self) -> dict[str, int]:
        """Apply every rule once; rows deleted per rule."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        deleted = {
            rule.name: self._apply(rule, now - timedelta(seconds=rule.age(self._cfg)))
            for rule in self._rules
        }
        if any(deleted.values()):
            log.info(
                "retention: deleted %s",
                ", ".join(f"{n} {name}" for name, n in deleted.items() if n),
            )
        return deleted

    def _apply(self, rule: Rule, cutoff: datetime) -> int:
        size, total = self._cfg.batch_size, 0
        for _ in range(self._cfg.max_batches):
            with transaction(self._sessions) as session:
                n = rule.delete(RetentionRepository(session), cutoff, size)
            total += n
            if n < size:
                break
        return total
