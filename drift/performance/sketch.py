"""A classification or regression sketch, chosen by task, with versioned bytes."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from drift.errors import SketchCorrupt, SketchMismatch
from drift.performance.base import DECODE_ERRORS, DEFAULT_ERROR_EDGES, PerformanceMetrics, Task
from drift.performance.classification import ClassificationSketch
from drift.performance.regression import RegressionSketch

_FORMAT_VERSION = 1

Sketch = ClassificationSketch | RegressionSketch


@dataclass(eq=False)
class PerformanceSketch:
    """A classification or regression sketch, tagged by task, with versioned bytes."""

    sketch: Sketch

    @classmethod
    def empty(
        cls,
        task: Task | str,
        *,
        positive_label: str = "1",
        error_edges: tuple[float, ...] = DEFAULT_ERROR_EDGES,
    ) -> PerformanceSketch:
        """An empty sketch for ``task``; an unknown task raises ValueError naming the choices."""
        if task == Task.CLASSIFICATION:
            return cls(ClassificationSketch(positive_label))
        if task == Task.REGRESSION:
            return cls(RegressionSketch(error_edges))
        raise ValueError(f"unknown task {task!r}; expected one of {[t.value for t in Task]}")

    @property
    def task(self) -> Task:
        if isinstance(self.sketch, ClassificationSketch):
            return Task.CLASSIFICATION
        return Task.REGRESSION

    def update(
        self,
        actual: Sequence[Any],
        predicted: Sequence[Any],
        scores: Sequence[float | None] | None = None,
    ) -> None:
        if isinstance(self.sketch, ClassificationSketch):
            self.sketch.update(actual, predicted, scores)
        elif scores is not None:
            raise ValueError("a regression sketch takes no scores")
        else:
            self.sketch.update(actual, predicted)

    def merge(self, other: PerformanceSketch) -> None:
        """Add ``other`` in; raises SketchMismatch, changing nothing, if incompatible."""
        if isinstance(self.sketch, ClassificationSketch):
            if not isinstance(other.sketch, ClassificationSketch):
                raise SketchMismatch("cannot merge a regression into a classification sketch")
            self.sketch.merge(other.sketch)
        else:
            if not isinstance(other.sketch, RegressionSketch):
                raise SketchMismatch("cannot merge a classification into a regression sketch")
            self.sketch.merge(other.sketch)

    def metrics(self) -> PerformanceMetrics:
        return self.sketch.metrics()

    def to_bytes(self) -> bytes:
        state = {"v": _FORMAT_VERSION, "task": self.task.value, "state": self.sketch.to_state()}
        return zlib.compress(msgspec.msgpack.encode(state), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformanceSketch:
        try:
            state = msgspec.msgpack.decode(zlib.decompress(data))
            if state.get("v") != _FORMAT_VERSION:
                raise SketchCorrupt(f"unsupported performance sketch format {state.get('v')!r}")
            task, inner = Task(state["task"]), state["state"]
        except (zlib.error, msgspec.DecodeError, *DECODE_ERRORS) as exc:
            raise SketchCorrupt(f"cannot decode performance sketch: {exc}") from exc
        if task is Task.CLASSIFICATION:
            return cls(ClassificationSketch.from_state(inner))
        return cls(RegressionSketch.from_state(inner))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PerformanceSketch):
            return NotImplemented
        return self.sketch == other.sketch
