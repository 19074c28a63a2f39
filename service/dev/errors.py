"""Errors of the development tooling.

LocalKafkaError   the local Kafka distribution or its processes could not be set up
ServingError      the model server (service/dev/model_server.py) has nothing to serve
"""


class LocalKafkaError(RuntimeError):
    """The local Kafka distribution or processes could not be set up."""


class ServingError(RuntimeError):
    """The model server has nothing to serve: no rollout file, one for another model, or
    neither of its versions loads."""


class LoopError(RuntimeError):
    """The closed loop stopped short: its feed failed, or a step did not come in time."""
