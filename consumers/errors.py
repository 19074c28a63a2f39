"""Errors raised by the consumers package.

    ConsumerError
    ├── InvalidEvent      one event breaks the contract; it goes to the dead-letter topic
    └── DeadLetterError   the dead-letter topic could not take an event (retriable)

Errors of kafka-python are translated here, at the boundary, so the rest of the
service never catches a foreign exception type.
"""

from __future__ import annotations

from enum import StrEnum


class InvalidReason(StrEnum):
    """Why an event was rejected; also the ``reason`` label of the invalid counter."""

    EMPTY = "empty"
    MALFORMED = "malformed"
    SCHEMA = "schema"
    TIMESTAMP = "timestamp"
    UNKNOWN_MODEL = "unknown_model"
    FEATURE = "feature"
    PREDICTION = "prediction"
    LABEL = "label"
    VERSION_CAP = "version_cap"


class ConsumerError(Exception):
    """Base class of every error raised by :mod:`consumers`."""

    retriable: bool = False


class InvalidEvent(ConsumerError):
    """``model`` is the event's model name where one was read (for unknown models)."""

    def __init__(self, kind: InvalidReason, detail: str, model: str | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.model = model


def from_the_future(max_clock_skew: float) -> InvalidEvent:
    """The error of an event stamped further ahead of the consumer's clock than allowed."""
    return InvalidEvent(
        InvalidReason.TIMESTAMP,
        f"timestamp is more than {max_clock_skew:.0f}s ahead of the consumer's clock",
    )


class DeadLetterError(ConsumerError):
    retriable = True
