"""End to end: Kafka -> driftwatch run -> SQL, on both databases."""

from __future__ import annotations

import pytest

from tests.harness.kafka import TestKafka
from tests.harness.scenario import compare, stored_counts, wait_for_total, wide_model

pytestmark = pytest.mark.kafka


def test_every_event_lands_in_its_window(kafka: TestKafka, db_url, make_config, send, services):
    config = make_config(db_url, models={"wide": wide_model(window="10s")})
    sent = send(config, 6000)
    svc = services(config)

    total = wait_for_total(db_url, sum(sent.values()), timeout=90)

    # SIGTERM: flush and leave within the 10 s shutdown budget.
    assert svc.terminate(timeout=10) == 0, svc.log_text()
    assert total == 6000
    assert compare(sent, stored_counts(db_url)) == (0, 0)
    assert len(sent) > 1, "the scenario should span several windows"


def test_restart_resumes_from_sql_offsets(kafka: TestKafka, db_url, make_config, send, services):
    config = make_config(db_url)
    first = send(config, 2000, seed=1)
    svc = services(config)
    wait_for_total(db_url, 2000, timeout=90)
    assert svc.terminate() == 0

    second = send(config, 2000, seed=2, days_ago=2.0)
    svc = services(config)
    wait_for_total(db_url, 4000, timeout=90)
    assert svc.terminate() == 0

    assert compare(first + second, stored_counts(db_url)) == (0, 0)
