"""Consumer options built from configuration."""

from __future__ import annotations

from service.config import KafkaConfig
from service.kafka_clients import consumer_options


def test_fetch_buffers_stay_near_a_poll() -> None:
    # kafka-python keeps several fetched partitions in memory at once: at 8 MiB
    # each, bench/memory.py saw 40-74 MB of them come and go (RSS grew 41-59 MB
    # after warm-up), at 2 MiB 16-26 MB, at the same ingest throughput.
    opts = consumer_options(KafkaConfig(bootstrap_servers=["b:9092"]), "earliest")
    assert opts["max_partition_fetch_bytes"] <= 2 << 20


def test_the_config_overrides_the_fetch_size() -> None:
    cfg = KafkaConfig(bootstrap_servers=["b:9092"], consumer={"max_partition_fetch_bytes": 8 << 20})
    assert consumer_options(cfg, "earliest")["max_partition_fetch_bytes"] == 8 << 20
