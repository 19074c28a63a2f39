"""kill -9 mid-stream, several times: no event and no labelled outcome lost or counted twice."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from consumers.synthetic import SyntheticPlan, SyntheticStream
from db.models import DetectorStateRow
from db.session import make_engine, make_session_factory
from service.config import load_config
from tests.harness.chaos import DeferredProducer, HeldBack, run_chaos
from tests.harness.kafka import TestKafka
from tests.harness.labels import produce_labeled
from tests.harness.scenario import wide_model

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    kafka: TestKafka, pg_url, make_config, tmp_path
):
    # Small polls and frequent flushes: many commit points for the kills to fall between.
    config = make_config(
        pg_url,
        flush_events=500,
        flush_interval="200ms",
        extra_consumer={"max_poll_records": 100},
        models={"wide": wide_model(labels={"task": "classification", "join_ttl": "1d"})},
    )
    cfg = load_config(config, env={})
    spec = cfg.model_specs()["wide"]
    plan = SyntheticPlan(model=spec, rate=200.0, start=time.time() - 3 * 86400)
    # Held back until the last run: no kill can come after the whole stream is in SQL,
    # however fast the machine. Later in event time than the rest (past its windows
    # and lateness), with its own event ids.
    rest_plan = SyntheticPlan(model=spec, rate=200.0, start=plan.start + 3600, seed=plan.seed + 1)
    topics = (cfg.kafka.topics.predictions, cfg.kafka.topics.labels)
    held = DeferredProducer()
    rest = produce_labeled(held, [SyntheticStream(rest_plan)], 5_000, *topics, seed=6)
    producer = kafka.producer()
    try:
        sent = produce_labeled(producer, [SyntheticStream(plan)], 25_000, *topics, seed=5)
    finally:
        producer.close()
    sent.windows += rest.windows
    sent.cells += rest.cells
    sent.labels_sent += rest.labels_sent
    assert sent.labels_sent > sent.labeled > 25_000  # some labels twice, some never

    def release() -> None:
        producer = kafka.producer()
        try:
            held.release(producer)
        finally:
            producer.close()

    archive = str(config.parent / "archive")
    result = run_chaos(
        config,
        pg_url,
        sent.windows,
        tmp_path,
        kills=3,
        seed=11,
        cells=sent.cells,
        archive_uri=archive,
        labels_sent=sent.labels_sent,
        held_back=HeldBack(5_000, release),
    )

    assert result.kills == 3
    assert all(0 < n <= 25_000 for n in result.stored_at_kills), result
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == 30_000
    assert (result.labels_lost, result.labels_duplicated) == (0, 0), result
    assert result.labeled_stored == sent.labeled
    # Every prediction and every label message is in the archive once.
    assert (result.archive_lost, result.archive_duplicated) == (0, 0), result
    assert result.archived == 30_000 + sent.labels_sent
    # The alarm rule ran on every partition and was fed each joined pair exactly once.
    assert fed_to_detectors(pg_url) == {"rule": sent.labeled}


def fed_to_detectors(url: str) -> dict[str, int]:
    """Joined pairs fed per detector, summed over model versions and partitions."""
    engine = make_engine(url)
    d = DetectorStateRow
    try:
        with make_session_factory(engine)() as s:
            rows = s.execute(select(d.detector, func.sum(d.labeled)).group_by(d.detector))
            return {name: int(n) for name, n in rows}
    finally:
        engine.dispose()
