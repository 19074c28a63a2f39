"""Errors of the development tooling.

LocalKafkaError   the local Kafka distribution or its processes could not be set up
"""


class LocalKafkaError(RuntimeError):
    """The local Kafka distribution or processes could not be set up."""
