"""Window evaluation: when a window has closed, judge it against the model's profile.

A window is closed once it is final by the rule of
:mod:`service.monitoring.watermarks` (the lowest watermark over the active partitions of
the predictions topic has passed its end plus the allowed lateness, judged
with this replica's consumer progress), the rule performance shares.

Evaluation is idempotent: a report is unique per (model, version, window,
profile), so replicas racing on one window store exactly one report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from consumers.loop import ConsumerProgress
from db.profiles import ProfileInfo, ProfileRepository, StoredProfile
from db.reports import DriftReportRepository, WindowVerdict
from db.repositories import OffsetRepository, WindowAggregateRepository
from db.session import transaction
from drift.errors import DriftError, ProfileMismatch
from drift.evaluate import evaluate
from drift.profile import align_spec
from drift.report import DriftReport, FeatureDrift
from drift.schema import ModelSpec
from drift.sketch import CategoricalSketch, RowSample, WindowSketch, encode_sample, spec_edges
from drift.stats import Method
from service.alerts.conditions import DATA_DRIFT, condition
from service.monitoring.unjudged import Unjudged
from service.monitoring.watermarks import Finality, as_bound

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Judging:
    """How one model's windows are judged (from its ``drift`` config)."""

    spec: ModelSpec
    methods: Mapping[str, Method] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    min_rows: int = 30
    min_rows_distance: int = 1
    drift_share: float = 0.5
    bh_correction: bool = False
    confirm_windows: int = 1


@dataclass(frozen=True, slots=True)
class EvaluationSettings:
    topic: str
    consumer_group: str
    idle_partition_timeout: float = 60.0
    backfill: float = 86400.0
    # The config file the service runs with, named in the commands its hints suggest.
    config_path: str | None = None


@dataclass(slots=True)
class _Current:
    """A window as it will be judged: what it is read from and how many events it had."""

    source: str
    data: WindowSketch | dict[str, list[Any]]
    events: int
    sample: bytes | None


class DriftObserver(Protocol):
    """What the evaluator reports of each drift report it stored, after the commit;
    :class:`service.metric_feeds.ReportMetrics` exports it."""

    def drift_report(self, verdict: WindowVerdict) -> None: ...

    def drift_unjudged(self, model: str) -> None:
        """A window of ``model`` that cannot be judged (:mod:`service.monitoring.unjudged`)."""


class NoDriftObserver:
    def drift_report(self, verdict: WindowVerdict) -> None:
        pass

    def drift_unjudged(self, model: str) -> None:
        pass


class WindowEvaluator:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        models: Mapping[str, Judging],
        settings: EvaluationSettings,
        observer: DriftObserver | None = None,
        clock: Callable[[], float] = time.time,
        progress: Callable[[], ConsumerProgress] | None = None,
    ) -> None:
        self._sessions = sessions
        self.finality = Finality(settings.idle_partition_timeout, progress)
        self._models = models
        self._settings = settings
        self._observer: DriftObserver = observer or NoDriftObserver()
        self._clock = clock
        self._profiles: dict[str, StoredProfile] = {}
        # Each model's spec on its current profile's bins, built once per profile: every
        # tick asks for all of them, and aligning one costs as much as judging a window.
        self._aligned: dict[str, ModelSpec] = {}
        self._warned: set[str] = set()
        self._refused: dict[str, int] = {}  # model -> the profile id refused (mismatch)
        self.unjudged = Unjudged("drift", self._observer.drift_unjudged)

    def follow(self, progress: Callable[[], ConsumerProgress]) -> None:
        """Read this replica's consumer progress when deciding which windows are final."""
        self.finality.follow(progress)

    # -- profiles ------------------------------------------------------------
    def refresh_profiles(self, strict: bool = True) -> dict[str, ModelSpec]:
        """Load changed current profiles; return every model's spec on its profile's edges.

        A model without a profile keeps its configured bins and is not evaluated. A
        profile of other features than the model's raises ProfileMismatch when
        ``strict`` (start-up: the config or the profile is wrong). Not strict (the
        ticks), it is refused alone, named once: a profile built from a newer config
        while replicas still run the older one must not stop every model's judging;
        the model goes on with the profile it held, if any.
        """
        with self._sessions() as session:
            repo = ProfileRepository(session)
            for model, info in repo.current_versions().items():
                if model not in self._models or self._refused.get(model) == info.id:
                    continue
                held = self._profiles.get(model)
                if held is None or held.info.id != info.id:
                    stored = repo.by_id(info.id)
                    if stored is not None:
                        try:
                            aligned = align_spec(
                                self._models[model].spec, stored.features, stored.prediction
                            )
                        except ProfileMismatch as exc:
                            if strict:
                                raise
                            self._refuse(model, info.id, info.version, exc)
                            continue
                        self._aligned[model], self._profiles[model] = aligned, stored
                        log.info("model %s: reference profile v%d", model, info.version)
        return self.specs()

    def _refuse(self, model: str, profile_id: int, version: int, exc: ProfileMismatch) -> None:
        self._refused[model] = profile_id
        held = self._profiles.get(model)
        log.error(
            "model %s: reference profile v%d is not used (%s); %s",
            model,
            version,
            exc,
            f"its windows are judged on v{held.info.version} meanwhile"
            if held is not None
            else "its windows are not judged until a profile of its features is stored",
        )

    def specs(self) -> dict[str, ModelSpec]:
        """Every model's spec: on its current profile's bins, or as configured without one."""
        return {model: self._aligned.get(model, j.spec) for model, j in self._models.items()}

    def profile_info(self, model: str) -> ProfileInfo | None:
        stored = self._profiles.get(model)
        return None if stored is None else stored.info

    # -- evaluation ------------------------------------------------------------
    def tick(self) -> list[int]:
        """Evaluate every closed, unreported window; return the new reports' ids."""
        self.refresh_profiles(strict=False)
        with self._sessions() as session:
            offsets = OffsetRepository(session, self._settings.consumer_group)
            close = self.finality.closing(offsets, self._settings.topic, self._clock())
        if close is None:
            return []
        written: list[int] = []
        for model in self._models:
            if model not in self._profiles:
                if model not in self._warned:
                    self._warned.add(model)
                    log.warning(
                        "model %s has no reference profile; its windows are not evaluated "
                        "(driftwatch reference build --config %s --model %s FILE)",
                        model,
                        self._settings.config_path or "CONFIG",
                        model,
                    )
                continue
            written.extend(self._evaluate_model(model, close))
        return written

    def _evaluate_model(self, model: str, close: float) -> list[int]:
        judging, stored = self._models[model], self._profiles[model]
        lateness = judging.spec.allowed_lateness_seconds
        ended_by = as_bound(close - lateness)
        with self._sessions() as session:
            windows = WindowAggregateRepository(session)
            newest = windows.newest_window_start(model)
            if newest is None:
                return []
            since = newest - timedelta(seconds=self._settings.backfill)
            todo = windows.window_layouts(model, since, ended_by)
            done = DriftReportRepository(session).reported(model, stored.info.id, since)
        written = []
        for (version, start), layouts in sorted(todo.items(), key=lambda kv: kv[0][1]):
            if (version, start) in done:
                continue
            try:
                report_id = self._evaluate_window(model, version, start, layouts)
            except DriftError as exc:
                self.unjudged.skip(model, version, start, exc)
                continue
            if report_id is not None:
                written.append(report_id)
        return written

    def _evaluate_window(
        self, model: str, version: str, start: datetime, layouts: dict[str, int]
    ) -> int | None:
        judging, stored = self._models[model], self._profiles[model]
        spec = self._aligned[model]
        with transaction(self._sessions) as session:
            current = self._current(
                WindowAggregateRepository(session), spec, version, start, layouts
            )
            if current is None:
                log.warning(
                    "window %s/%s at %s has no sketch on the profile's bins and no sample; skipped",
                    model,
                    version,
                    start.isoformat(),
                )
                return None
            report = evaluate(
                stored.features,
                current.data,
                methods=judging.methods,
                thresholds=judging.thresholds,
                min_rows=judging.min_rows,
                bh_correction=judging.bh_correction,
                drift_share=judging.drift_share,
                min_rows_distance=judging.min_rows_distance,
            )
            prediction = self._prediction_drift(stored, current, judging)
            repo = DriftReportRepository(session)
            confirmed = bool(report.dataset_drift)
            if confirmed and judging.confirm_windows > 1:
                flags = repo.previous_flags(
                    model, version, stored.info.id, start, judging.confirm_windows - 1
                )
                confirmed = len(flags) == judging.confirm_windows - 1 and all(flags)
            verdict = WindowVerdict(
                model=model,
                model_version=version,
                window_start=int(start.timestamp()),
                window_seconds=spec.window_seconds,
                profile_id=stored.info.id,
                profile_version=stored.info.version,
                source=current.source,
                events=current.events,
                report=report,
                prediction=prediction,
                confirmed=confirmed,
                sample=current.sample,
            )
            now = datetime.fromtimestamp(self._clock(), UTC)
            report_id = repo.add(verdict, now)
            if report_id is not None:
                _drift_alert(session, verdict, report_id, now)
        if report_id is not None:
            self._observer.drift_report(verdict)
            log.info(
                "drift report %d: %s/%s window %s drifted share %s%s",
                report_id,
                model,
                version,
                start.isoformat(),
                "n/a" if report.drifted_share is None else f"{report.drifted_share:.2f}",
                " DATASET DRIFT" if report.dataset_drift else "",
            )
        return report_id

    def _current(
        self,
        windows: WindowAggregateRepository,
        spec: ModelSpec,
        version: str,
        start: datetime,
        layouts: dict[str, int],
    ) -> _Current | None:
        events = sum(layouts.values())
        if set(layouts) == {spec.layout}:
            sketch = windows.window_sketch(spec.name, version, start, spec.layout, spec_edges(spec))
            sample = sketch.sample_bytes() if sketch.sample.rows else None
            if sketch.sample_is_complete and sketch.events:
                # Small enough to be held whole: p-value tests get the exact values.
                return _Current("exact", sketch.sample_frame(), events, sample)
            return _Current("sketch", sketch, events, sample)
        # Part of the window was ingested on other bins (before the profile existed
        # or changed). Row samples are bottom-k by event-id hash whatever the bins,
        # so the window's sample is the smallest keys over all its rows.
        names = [*(f.name for f in spec.features), "prediction"]
        keyed: list[tuple[int, dict[str, Any]]] = []
        capacity = None
        for layout in layouts:
            known = spec_edges(spec) if layout == spec.layout else None
            sketch = windows.window_sketch(spec.name, version, start, layout, known)
            if set(sketch.features) != set(names[:-1]) or not sketch.sample.capacity:
                continue  # rows of another feature set, or without a sample
            columns = [*sketch.features, "prediction"]
            keyed += [
                (k, dict(zip(columns, row, strict=True)))
                for k, row in zip(sketch.sample.keys, sketch.sample.rows, strict=True)
            ]
            capacity = min(capacity or sketch.sample.capacity, sketch.sample.capacity)
        if not keyed or capacity is None:
            return None
        keyed.sort(key=lambda pair: pair[0])
        rows = [[row[n] for n in names] for _, row in keyed[:capacity]]
        frame = {n: [r[i] for r in rows] for i, n in enumerate(names)}
        source = "exact" if len(rows) == events else "sample"
        return _Current(source, frame, events, encode_sample(names, rows))

    @staticmethod
    def _prediction_drift(
        stored: StoredProfile, current: _Current, judging: Judging
    ) -> FeatureDrift | None:
        if stored.prediction is None:
            return None
        data = current.data
        current_data: Any = (
            WindowSketch(
                data.events, {"prediction": data.prediction}, CategoricalSketch(), RowSample(0)
            )
            if isinstance(data, WindowSketch)
            else {"prediction": data["prediction"]}
        )
        result: DriftReport = evaluate(
            stored.prediction,
            current_data,
            min_rows=judging.min_rows,
            min_rows_distance=judging.min_rows_distance,
        )
        return result.features[0]


def _drift_alert(session: Session, verdict: WindowVerdict, report_id: int, now: datetime) -> None:
    """Dataset drift fires on a confirmed window and resolves on a clean one."""
    drift = verdict.report.dataset_drift
    firing = True if verdict.confirmed else (False if drift is not None and not drift else None)
    share = verdict.report.drifted_share
    condition(
        session,
        verdict.model,
        DATA_DRIFT,
        firing,
        f"report-{report_id}",
        f"dataset drift in {verdict.model}/{verdict.model_version}: drifted feature share "
        f"{'n/a' if share is None else f'{share:.2f}'} (drift report {report_id})",
        now,
        {
            "report_id": report_id,
            "model_version": verdict.model_version,
            "window_start": verdict.window_start,
            "drifted_share": share,
        },
    )
