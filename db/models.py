"""The monitoring half's tables: offsets, window aggregates, profiles, reports, the
label join and the concept-drift detectors. Timestamps are stored as UTC and read
back timezone-aware (:class:`db.base.UTCDateTime`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, BigId, UTCDateTime


class ConsumerOffset(Base):
    """The next offset to read per partition, written with the state it produced.

    ``watermark`` is the highest event time seen in the partition up to that
    offset; it decides lateness, so it is checkpointed with the offset to make a
    replay decide exactly as the first run did.
    """

    __tablename__ = "consumer_offsets"

    consumer_group: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    watermark: Mapped[float | None] = mapped_column(Float(precision=53))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AggregateKey:
    """The key columns of a per-partition window aggregate (data or performance).

    One row per (model, version, window, partition, layout): ``layout``
    fingerprints the sketch's bins and schema, and rows of different layouts
    never merge. ``updated_at`` is the last flush that added to the row. The
    sort orders keep the columns where the tables had them before the mixin.
    """

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True, sort_order=-1)
    model: Mapped[str] = mapped_column(String(200), sort_order=-1)
    model_version: Mapped[str] = mapped_column(String(200), sort_order=-1)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, sort_order=-1)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime, sort_order=-1)
    partition: Mapped[int] = mapped_column(Integer, sort_order=-1)
    layout: Mapped[str] = mapped_column(String(32), sort_order=-1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, sort_order=1)


def aggregate_key_args(table: str) -> tuple[UniqueConstraint, Index]:
    """The unique key and window-end index of an :class:`AggregateKey` table."""
    return (
        UniqueConstraint(
            "model", "model_version", "window_start", "partition", "layout", name=f"uq_{table}_key"
        ),
        # Retention selects by window end; without it every batch scans the table.
        Index(f"ix_{table}_window_end", "window_end"),
    )


class WindowAggregate(AggregateKey, Base):
    """One partition's share of one window of one model version.

    ``latency`` is the :class:`drift.latency_sketch.LatencySketch` of the events'
    ``latency_ms`` (NULL while none of them carried one).
    """

    __tablename__ = "window_aggregates"
    __table_args__ = aggregate_key_args(__tablename__)

    event_count: Mapped[int] = mapped_column(BigInteger)
    late_count: Mapped[int] = mapped_column(BigInteger)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
    latency: Mapped[bytes | None] = mapped_column(LargeBinary)


class ReferenceProfileRow(Base):
    """One version of a model's reference profile; the highest version is current.

    ``profile`` is :meth:`drift.profile.ReferenceProfile.to_bytes` of the
    features, ``prediction`` the same for the prediction column when the
    reference had one.
    """

    __tablename__ = "reference_profiles"
    __table_args__ = (UniqueConstraint("model", "version", name="uq_reference_profiles_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(1000))
    rows: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[bytes] = mapped_column(LargeBinary)
    prediction: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DriftReportRow(Base):
    """The data-drift verdict on one closed window of one model version.

    Unique per (model, version, window, profile): replicas evaluating the same
    window race on the insert and exactly one report survives.
    ``current_sample`` is the window's row sample (msgpack, zlib), kept so the
    report can be rendered for people after window rows are pruned.
    """

    __tablename__ = "drift_reports"
    __table_args__ = (
        UniqueConstraint(
            "model", "model_version", "window_start", "profile_id", name="uq_drift_reports_window"
        ),
        Index("ix_drift_reports_model_window", "model", "window_start"),
        Index("ix_drift_reports_window_end", "window_end"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    profile_id: Mapped[int] = mapped_column(ForeignKey("reference_profiles.id"))
    profile_version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    events: Mapped[int] = mapped_column(BigInteger)
    reference_rows: Mapped[int] = mapped_column(BigInteger)
    features_drifted: Mapped[int] = mapped_column(Integer)
    features_judged: Mapped[int] = mapped_column(Integer)
    drifted_share: Mapped[float | None] = mapped_column(Float(precision=53))
    dataset_drift: Mapped[bool | None] = mapped_column(Boolean)
    confirmed: Mapped[bool] = mapped_column(Boolean)
    prediction_method: Mapped[str | None] = mapped_column(String(32))
    prediction_score: Mapped[float | None] = mapped_column(Float(precision=53))
    prediction_p_value: Mapped[float | None] = mapped_column(Float(precision=53))
    prediction_drifted: Mapped[bool | None] = mapped_column(Boolean)
    current_sample: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DriftFeatureRow(Base):
    """One feature's verdict within a drift report."""

    __tablename__ = "drift_feature_results"

    report_id: Mapped[int] = mapped_column(
        ForeignKey("drift_reports.id", ondelete="CASCADE"), primary_key=True
    )
    feature: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float(precision=53))
    p_value: Mapped[float | None] = mapped_column(Float(precision=53))
    p_value_adjusted: Mapped[float | None] = mapped_column(Float(precision=53))
    threshold: Mapped[float | None] = mapped_column(Float(precision=53))
    drifted: Mapped[bool | None] = mapped_column(Boolean)
    reference_count: Mapped[int] = mapped_column(BigInteger)
    current_count: Mapped[int] = mapped_column(BigInteger)
    reference_null_share: Mapped[float] = mapped_column(Float(precision=53))
    current_null_share: Mapped[float] = mapped_column(Float(precision=53))
    # JSON list of categories never seen in the reference.
    unseen_categories: Mapped[str] = mapped_column(Text)


class ReportHtmlRow(Base):
    """The latest rendered Evidently report per model (gzip-compressed HTML)."""

    __tablename__ = "report_html"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("drift_reports.id", ondelete="CASCADE"))
    html: Mapped[bytes] = mapped_column(LargeBinary)
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PendingPrediction(Base):
    """A prediction waiting for its label, or labelled and kept to spot duplicate labels.

    Keyed by the partition number (shared by the predictions and labels topics)
    so that only the replica owning that partition ever reads or writes the
    row. Times are epoch seconds of event time; ``expires_at`` is the event time
    plus the model's join TTL, compared with the partition's label watermark.
    ``labeled_at`` is the joined label's event time (None while unlabelled).
    """

    __tablename__ = "pending_predictions"
    __table_args__ = (Index("ix_pending_predictions_expiry", "partition", "expires_at"),)

    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[int] = mapped_column(BigInteger)
    event_time: Mapped[float] = mapped_column(Float(precision=53))
    predicted: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float(precision=53))
    score: Mapped[float | None] = mapped_column(Float(precision=53))
    expires_at: Mapped[float] = mapped_column(Float(precision=53))
    labeled_at: Mapped[float | None] = mapped_column(Float(precision=53))


class PendingLabel(Base):
    """A label that arrived before its prediction, kept until the join TTL runs out.

    ``expires_at`` (label event time plus the join TTL) is compared with the
    partition's prediction watermark.
    """

    __tablename__ = "pending_labels"
    __table_args__ = (Index("ix_pending_labels_expiry", "partition", "expires_at"),)

    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    actual: Mapped[str] = mapped_column(Text)
    event_time: Mapped[float] = mapped_column(Float(precision=53))
    expires_at: Mapped[float] = mapped_column(Float(precision=53))


class PerformanceAggregate(AggregateKey, Base):
    """One partition's share of the labelled outcomes of one window of one model version.

    The window is the predictions' (by prediction event time). ``predicted``
    counts predictions registered for the join, ``labeled`` those joined,
    ``unlabeled`` those whose TTL ran out without a label; ``sketch`` is a
    :class:`drift.performance.PerformanceSketch` of the joined pairs.
    """

    __tablename__ = "performance_aggregates"
    __table_args__ = aggregate_key_args(__tablename__)

    predicted: Mapped[int] = mapped_column(BigInteger)
    labeled: Mapped[int] = mapped_column(BigInteger)
    unlabeled: Mapped[int] = mapped_column(BigInteger)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)


class PerformanceReportRow(Base):
    """Concept-drift results of one window whose labels are all in (or expired).

    Linked to the window by (model, version, window start) and to its drift
    report when one exists. Metric columns are None where undefined or not of
    the task; the degradation columns are None without a configured reference.
    """

    __tablename__ = "performance_reports"
    __table_args__ = (
        UniqueConstraint(
            "model", "model_version", "window_start", name="uq_performance_reports_window"
        ),
        Index("ix_performance_reports_window_end", "window_end"),
        # Deleting a drift report clears this link (ON DELETE SET NULL), a lookup per row.
        Index("ix_performance_reports_drift_report_id", "drift_report_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    drift_report_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_reports.id", ondelete="SET NULL")
    )
    task: Mapped[str] = mapped_column(String(16))
    predicted: Mapped[int] = mapped_column(BigInteger)
    labeled: Mapped[int] = mapped_column(BigInteger)
    unlabeled: Mapped[int] = mapped_column(BigInteger)
    label_coverage: Mapped[float | None] = mapped_column(Float(precision=53))
    accuracy: Mapped[float | None] = mapped_column(Float(precision=53))
    precision: Mapped[float | None] = mapped_column(Float(precision=53))
    recall: Mapped[float | None] = mapped_column(Float(precision=53))
    f1: Mapped[float | None] = mapped_column(Float(precision=53))
    roc_auc: Mapped[float | None] = mapped_column(Float(precision=53))
    log_loss: Mapped[float | None] = mapped_column(Float(precision=53))
    rmse: Mapped[float | None] = mapped_column(Float(precision=53))
    mae: Mapped[float | None] = mapped_column(Float(precision=53))
    mape: Mapped[float | None] = mapped_column(Float(precision=53))
    degradation_metric: Mapped[str | None] = mapped_column(String(16))
    reference_value: Mapped[float | None] = mapped_column(Float(precision=53))
    current_value: Mapped[float | None] = mapped_column(Float(precision=53))
    statistic: Mapped[float | None] = mapped_column(Float(precision=53))
    p_value: Mapped[float | None] = mapped_column(Float(precision=53))
    degraded: Mapped[bool | None] = mapped_column(Boolean)
    verdict: Mapped[str] = mapped_column(Text)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Streaming detectors: alarms raised by pairs whose prediction lies in the window,
    # their detectors (comma-separated, sorted) and degraded OR an alarm of the rule.
    alarms: Mapped[int] = mapped_column(Integer, server_default="0")
    alarm_detectors: Mapped[str] = mapped_column(String(200), server_default="")
    concept_drift: Mapped[bool | None] = mapped_column(Boolean)
    # 0 for the report written when the window's labels were final within the horizon;
    # each batch of late labels joined from the archive rewrites it and counts one more.
    revision: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    revised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LateLabelCursor(Base):
    """The next label offset of one labels partition the late-label join has not read.

    Written in the transaction that adds the joined pairs to the aggregates (and
    revises the reports), with a compare-and-set on ``next_offset``: a batch
    redone after a crash, or raced by another replica, never counts twice.
    """

    __tablename__ = "late_label_cursors"

    consumer_group: Mapped[str] = mapped_column(String(255), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LateLabelStart(Base):
    """Where the late-label join starts on a partition consumed before it existed
    (migration 0015 copied every stored offset): labels before it were joined, or
    not, under the older rules, and are never read by the late join."""

    __tablename__ = "late_label_starts"

    consumer_group: Mapped[str] = mapped_column(String(255), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class DetectorStateRow(Base):
    """One streaming detector of one model version on one partition's joined pairs.

    Written in the flush transaction with both topics' offsets, like the join
    state, so a replay continues from exactly the state its offsets produced.
    ``state`` is the detector's ``to_state()`` as JSON; ``loss`` names the
    per-event loss it was fed (a detector fed another loss starts over);
    ``labeled`` counts the pairs fed since the row was created.
    """

    __tablename__ = "detector_states"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(200), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    detector: Mapped[str] = mapped_column(String(32), primary_key=True)
    loss: Mapped[str] = mapped_column(String(64))
    labeled: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConceptDriftAlarmRow(Base):
    """A streaming detector's drift on a model version's error stream.

    ``prediction_time`` and ``label_time`` are the event times of the pair
    whose error raised it; the alarm belongs to the window of the prediction.
    ``labeled`` is the detector's pair count at the alarm; ``baseline_rate``
    and ``alarm_rate`` the error rate (mean loss) before and after the change,
    where the detector knows them.
    """

    __tablename__ = "concept_drift_alarms"
    __table_args__ = (
        Index("ix_concept_drift_alarms_window", "model", "model_version", "prediction_time"),
        # Retention's range is over all models, which the index above cannot serve.
        Index("ix_concept_drift_alarms_prediction_time", "prediction_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    detector: Mapped[str] = mapped_column(String(32))
    prediction_time: Mapped[datetime] = mapped_column(UTCDateTime)
    label_time: Mapped[datetime] = mapped_column(UTCDateTime)
    labeled: Mapped[int] = mapped_column(BigInteger)
    baseline_rate: Mapped[float | None] = mapped_column(Float(precision=53))
    alarm_rate: Mapped[float | None] = mapped_column(Float(precision=53))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
