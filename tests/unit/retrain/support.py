"""What the retrain tests share: a scripted in-memory executor, a Parquet exporter, a clock."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from retrain.executors.base import JobPhase, JobSpec, JobStatus
from retrain.gates import GateSettings, MetricGate
from retrain.settings import ModelRetrain

T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
SHA = "c" * 64


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class ScriptedExecutor:
    """Jobs run until a test scripts their outcome; launches are counted by name."""

    starts: Counter[str] = field(default_factory=Counter)
    launches: Counter[str] = field(default_factory=Counter)  # every call, adoptions too
    cancelled: list[str] = field(default_factory=list)
    outcomes: dict[str, JobStatus] = field(default_factory=dict)
    specs: dict[str, JobSpec] = field(default_factory=dict)

    def launch(self, spec: JobSpec) -> bool:
        self.launches[spec.name] += 1
        if spec.name not in self.starts:  # a second launch adopts
            self.starts[spec.name] += 1
            self.specs[spec.name] = spec
        return True

    def observe(self, spec: JobSpec) -> JobStatus:
        if spec.name not in self.starts:
            return JobStatus(JobPhase.MISSING)
        return self.outcomes.get(spec.name, JobStatus(JobPhase.RUNNING))

    def cancel(self, spec: JobSpec) -> None:
        self.cancelled.append(spec.name)

    def close(self) -> None:
        return None

    def succeed(self, name: str, result: dict[str, Any], log: str = "ok\n") -> None:
        self.outcomes[name] = JobStatus(JobPhase.SUCCEEDED, None, log, result)

    def fail(self, name: str, reason: str, log: str = "Traceback ...\n") -> None:
        self.outcomes[name] = JobStatus(JobPhase.FAILED, reason, log)

    def vanish(self, name: str) -> None:
        """The backend loses the job (a Kubernetes Job deleted by its TTL)."""
        self.outcomes[name] = JobStatus(JobPhase.MISSING)


@dataclass
class ParquetExporter:
    """Writes ``rows`` labelled rows in the export format; counts its calls."""

    rows: int = 500
    calls: int = 0
    error: Exception | None = None

    def __call__(self, model: str, start: datetime, end: datetime, dest: str) -> int:
        self.calls += 1
        if self.error is not None:
            raise self.error
        n = self.rows
        times = [start + (end - start) * i / max(n, 1) for i in range(n)]
        table = pa.table(
            {
                "event_id": [f"e{i}" for i in range(n)],
                "model_version": ["v1"] * n,
                "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
                "prediction": [0.5] * n,
                "label": ["1" if i % 2 else "0" for i in range(n)],
                "label_time": pa.array(times, pa.timestamp("us", tz="UTC")),
                "amount": [float(i) for i in range(n)],
            }
        )
        pq.write_table(table, Path(dest))
        return n


def model_settings(**kw: Any) -> ModelRetrain:
    base: dict[str, Any] = {
        "model": "fraud",
        "gates": GateSettings((MetricGate("accuracy", min_delta=0.0),), min_holdout=100),
        "min_new_labels": 0,
        "cooldown": timedelta(hours=1),
    }
    base.update(kw)
    return ModelRetrain(**base)


def train_result(
    accuracy: float = 0.9, uri: str = "file:///artifacts/fraud/run-1/model.skops"
) -> dict[str, Any]:
    """A training result; ``uri`` inside the output of run 1 under ``file:///artifacts``."""
    return {
        "model_uri": uri,
        "sha256": SHA,
        "metrics": {"accuracy": accuracy},
        "rows": {"train": 400, "holdout": 100},
        "data_range": {"from": "2026-11-20T12:00:00+00:00", "to": "2026-11-27T12:00:00+00:00"},
        "trainer": "driftwatch-reference/1",
    }


def validate_result(champion: float, candidate: float, holdout: int = 100) -> dict[str, Any]:
    return {
        "holdout_rows": holdout,
        "champion": {"metrics": {"accuracy": champion}, "slices": {}},
        "candidate": {"metrics": {"accuracy": candidate}, "slices": {}},
    }
