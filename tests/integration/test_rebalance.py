"""Two replicas in one consumer group: partitions move between them mid-stream.

"Mid-stream" is made true by construction, whatever the machine's speed: the
stream is produced in three parts, the second only once both replicas hold
partitions, the third only once the first replica is dead and the second has
taken its partitions over. A fast machine that drains each part at once still
rebalances with part of the stream unwritten, and the third part can only be
stored by the replica that took over. Each part's events come later in event
time than the previous part's, whenever it is sent, so none of them is late.
"""

from __future__ import annotations

import time

import pytest

from tests.harness.scenario import ServiceProcess, compare, stored_counts, wait_for_total

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
PART = 20_000


def _part(send, config, k):
    """Part ``k`` of the stream: 100 s of event time, 864 s after part ``k - 1``'s start
    (whenever it is sent), so none of its events is late for a window of an earlier part."""
    return send(config, PART, seed=21 + k, days_ago=3.0 - 0.01 * k)


def _wait_for_log(svc: ServiceProcess, text: str, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if svc.log_text().count(text) >= count:
            return True
        time.sleep(0.1)
    return False


def test_replicas_share_partitions_and_hand_over_without_loss(pg_url, make_config, send, services):
    config = make_config(pg_url, flush_interval="100ms")
    sent = _part(send, config, 0)

    first = services(config)
    wait_for_total(pg_url, 2000, timeout=60, interval=0.05)
    second = services(config)
    assert _wait_for_log(second, "assigned", 1, timeout=60), "the second replica got partitions"
    assert _wait_for_log(first, "assigned", 2, timeout=60), "the first replica gave some up"
    # Produced only now: the rebalance happened before this part of the stream existed.
    sent += _part(send, config, 1)

    first.kill()  # its partitions move to the second after the session times out
    assert _wait_for_log(second, "assigned", 2, timeout=60), "the second took over"
    # Produced only now: the first replica's partitions get events only the second can store.
    sent += _part(send, config, 2)

    total = wait_for_total(pg_url, 3 * PART, timeout=180)
    assert second.terminate(timeout=10) == 0
    assert total == 3 * PART
    assert compare(sent, stored_counts(pg_url)) == (0, 0)
