"""kill -9 mid-stream, several times: nothing lost, nothing counted twice."""

from __future__ import annotations

import pytest

from tests.harness.chaos import run_chaos

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def test_sigkill_mid_stream_loses_and_duplicates_nothing(pg_url, make_config, send, tmp_path):
    # Small polls and frequent flushes: many commit points for the kills to fall between.
    config = make_config(
        pg_url,
        flush_events=500,
        flush_interval="200ms",
        extra_consumer={"max_poll_records": 100},
    )
    sent = send(config, 30_000)

    result = run_chaos(config, pg_url, sent, tmp_path, kills=3, seed=11)

    assert result.kills == 3
    assert all(0 < n < 30_000 for n in result.stored_at_kills), result
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == 30_000
