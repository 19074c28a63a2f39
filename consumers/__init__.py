"""Kafka I/O: decoding and validating events, the ingestion loop, offsets, dead letters."""
