"""Two replicas in one consumer group: partitions move between them mid-stream."""

from __future__ import annotations

import time

import pytest

from tests.harness.scenario import ServiceProcess, compare, stored_counts, wait_for_total

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _wait_for_log(svc: ServiceProcess, text: str, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if svc.log_text().count(text) >= count:
            return True
        time.sleep(0.1)
    return False


def test_replicas_share_partitions_and_hand_over_without_loss(pg_url, make_config, send, services):
    # Tiny polls keep both replicas busy long enough for two rebalances.
    config = make_config(pg_url, flush_interval="100ms", extra_consumer={"max_poll_records": 20})
    sent = send(config, 60_000, seed=21)

    first = services(config)
    wait_for_total(pg_url, 2000, timeout=60, interval=0.05)
    second = services(config)
    assert _wait_for_log(second, "assigned", 1, timeout=60), "the second replica got partitions"
    assert _wait_for_log(first, "assigned", 2, timeout=10), "the first replica gave some up"
    shared_at = sum(stored_counts(pg_url).values())
    assert shared_at < 60_000, "the rebalance happened mid-stream"

    first.kill()  # its partitions move to the second after the session times out
    assert _wait_for_log(second, "assigned", 2, timeout=60), "the second took over"

    total = wait_for_total(pg_url, 60_000, timeout=180)
    assert second.terminate(timeout=10) == 0
    assert total == 60_000
    assert compare(sent, stored_counts(pg_url)) == (0, 0)
