"""The baseline of ``bench/ingest.py``: a bare kafka-python poll loop, in a process of its own.

It imports kafka-python and the standard library only, so its heap is what
any Kafka consumer's would be; nothing a driftwatch import leaves behind is
walked by its garbage collector. Run as ``python _bare_consumer.py '<json>'``
with ``{"options": {...KafkaConsumer options...}, "topic": ..., "count": ...}``
(an ``api_version`` list becomes a tuple). It reads ``count`` records from
every partition from the beginning, outside any group, and prints one JSON
line: ``{"seconds": ..., "cpu_seconds": ...}``, the wall-clock and process CPU
time from its first record to its last.
"""

from __future__ import annotations

import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def main() -> None:
    args = json.loads(sys.argv[1])
    options = dict(args["options"])
    if options.get("api_version") is not None:
        options["api_version"] = tuple(options["api_version"])
    topic, count = args["topic"], int(args["count"])
    consumer = KafkaConsumer(**options, group_id=None)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen, first, first_cpu = 0, 0.0, 0.0
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            if not first:
                first, first_cpu = time.perf_counter(), time.process_time()
            seen += len(records)
    seconds, cpu = time.perf_counter() - first, time.process_time() - first_cpu
    consumer.close()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "read": seen}), flush=True)


if __name__ == "__main__":
    main()
