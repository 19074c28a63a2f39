"""``make demo``'s timeline and its checks, from what the service stored.

In order: the drift detected (the first drifted window, none before the drift
point, and the concept-drift alarm on the labelled errors), the alerts delivered to
the webhook, the retraining run and its gates (candidate against the drifted
champion on one holdout), each canary step with every check's verdict and measured
value, the promotion, and the promoted version's accuracy on the live stream
against the champion's before the drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from db.detectors import AlarmRepository
from db.models import ConceptDriftAlarmRow
from db.reports import DriftReportRepository, ReportSummary
from db.repositories import WindowAggregateRepository
from db.session import transaction
from drift.html import decompress_html
from service.dev.alert_printer import Delivered
from service.dev.loop import PRE_WINDOWS, STEPS, WINDOW, Stored
from service.dev.served_feed import Feed

TARGET = 0.98  # the accuracy after promotion, as a share of the pre-drift accuracy


@dataclass(frozen=True)
class Outcome:
    """What the demo measured beside the stored rows."""

    drift_point: datetime
    onset: float  # wall clock (epoch s) when the first post-drift event was sent
    pre: float
    after: tuple[float | None, int, int]  # accuracy after promotion, pairs, windows
    sent: int
    stored: int
    drift: list[ReportSummary]
    alarms: list[ConceptDriftAlarmRow]
    html: str | None
    api_runs: int | None  # runs the HTTP API listed (None: it did not answer)

    @classmethod
    def collect(
        cls,
        sessions: sessionmaker[Session],
        api: str,
        token: str,
        feed: Feed,
        start: float,
        onset: float,
        pre: float,
        after: tuple[float | None, int, int],
    ) -> Outcome:
        """Once SQL holds every event sent (or 30 s passed), read the reports back."""
        sent = feed.before + feed.after + sum(feed.sent().values())
        deadline = time.monotonic() + 30
        while True:
            with transaction(sessions) as s:
                stored = sum(w.events for w in WindowAggregateRepository(s).window_counts())
            if stored >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        with transaction(sessions) as s:
            repo = DriftReportRepository(s)
            drift = repo.summaries("fraud", limit=1000)
            html = repo.html("fraud")
            alarms = AlarmRepository(s).rows("fraud")
        return cls(
            drift_point=datetime.fromtimestamp(start + PRE_WINDOWS * WINDOW, UTC),
            onset=onset,
            pre=pre,
            after=after,
            sent=sent,
            stored=stored,
            drift=drift,
            alarms=alarms,
            html=None if html is None else decompress_html(html[1]),
            api_runs=_api_runs(api, token),
        )

    def since(self, moment: datetime | float | None) -> str:
        if moment is None:
            return "   -  "
        at = moment.timestamp() if isinstance(moment, datetime) else moment
        return f"+{at - self.onset:5.1f}s"


def _api_runs(api: str, token: str) -> int | None:
    try:
        answer = httpx.get(
            f"{api}/v1/runs", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
    except httpx.HTTPError:
        return None
    return len(answer.json().get("items", [])) if answer.status_code == 200 else None


def _drift(o: Outcome) -> bool:
    print(f"\n1. drift point (event time) {o.drift_point:%H:%M:%S}; times below are from onset")
    flagged = [r for r in o.drift if r.dataset_drift]
    first = flagged[0] if flagged else None
    if first is None:
        print("   drift: NOT detected")
        return False
    early = [r for r in flagged if r.window_start < o.drift_point]
    print(
        f"   data drift detected {o.since(first.created_at)}: window "
        f"{first.window_start:%H:%M:%S}, {first.features_drifted} of {first.features_judged} "
        f"features drifted ({len(flagged)} drifted windows, {len(early)} before the drift point)"
    )
    alarm = o.alarms[0] if o.alarms else None
    if alarm is None:
        print("   concept drift: NOT detected")
        return False
    rates = ""
    if alarm.baseline_rate is not None and alarm.alarm_rate is not None:
        rates = f", error rate {alarm.baseline_rate:.2f} -> {alarm.alarm_rate:.2f}"
    print(
        f"   concept drift detected {o.since(alarm.created_at)}: detector {alarm.detector} on "
        f"{alarm.model_version}, prediction at {alarm.prediction_time:%H:%M:%S}{rates}"
    )
    return not early and alarm.prediction_time >= o.drift_point


def _alerts(o: Outcome, alerts: list[Delivered]) -> bool:
    kinds = ", ".join(f"{a.body.get('kind')} {o.since(a.at)}" for a in alerts)
    print(f"2. alerts delivered to the webhook: {len(alerts)} ({kinds or 'none'})")
    return any(
        a.body.get("kind") in ("data_drift", "performance_degradation", "concept_drift")
        for a in alerts
    )


def _run(o: Outcome, stored: Stored) -> bool:
    if not stored.runs:
        print("3. retraining run: NONE")
        return False
    run = stored.runs[0]
    print(
        f"3. run {run.id} started {o.since(run.created_at)} ({run.trigger}), "
        f"{run.data_rows} rows; verdict {run.verdict} {o.since(run.finished_at)}"
    )
    better = False
    for g in stored.gates:
        what = (g.metric or "holdout rows") + ("" if g.slice is None else f" [{g.slice}]")
        rows = g.metric is None  # a gate without a metric counts rows
        print(
            f"   gate {g.gate} {what}: champion {_num(g.champion_value, rows)}, "
            f"candidate {_num(g.candidate_value, rows)} -> {'pass' if g.passed else 'FAIL'}"
        )
        if g.gate == "min_delta" and g.metric == "accuracy" and g.slice is None:
            c, v = g.champion_value, g.candidate_value
            better = c is not None and v is not None and v > c
    return run.verdict == "accepted" and better


def _rollout(o: Outcome, stored: Stored) -> bool:
    rollout = stored.rollout
    if rollout is None:
        print("4. canary rollout: NONE")
        return False
    print(f"4. canary rollout {rollout.id} started {o.since(rollout.created_at)}")
    last: dict[int, dict[str, str]] = {}
    judged: dict[int, datetime] = {}
    for a in stored.analyses:
        last.setdefault(a.step, {})[a.check] = (
            f"{a.check} {a.outcome} ({_num(a.value)} vs {a.threshold:.3g}, "
            f"{a.n_canary} canary / {a.n_stable} stable)"
        )
        judged[a.step] = a.analysed_at
    for step, checks in sorted(last.items()):
        weight = STEPS[step] if step < len(STEPS) else "?"
        print(f"   step {step + 1} ({weight}%) judged {o.since(judged[step])}:")
        for line in checks.values():
            print(f"     {line}")
    print(
        f"5. rollout {rollout.phase} {o.since(rollout.finished_at)}"
        f"{f': {rollout.reason}' if rollout.reason else ''}"
    )
    return len(last) >= len(STEPS) and rollout.phase == "promoted"


def _num(value: float | None, rows: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if rows else f"{value:.3f}"


def report(o: Outcome, stored: Stored, alerts: list[Delivered], html_path: Path) -> bool:
    """Print the timeline and the checks; whether the loop closed."""
    drift = _drift(o)
    alerted = _alerts(o, alerts)
    accepted = _run(o, stored)
    promoted = _rollout(o, stored)
    a, pairs, windows = o.after
    recovered = a is not None and a / o.pre >= TARGET
    print(
        f"6. accuracy after promotion {'-' if a is None else f'{a:.1%}'} ({pairs} labelled "
        f"pairs in {windows} windows); before the drift {o.pre:.1%}"
    )
    if o.html is not None:
        html_path.write_text(o.html, encoding="utf-8")
    print(f"\nnewest Evidently report: {html_path if o.html else 'NOT rendered'}")
    print(f"events: {o.sent} sent, {o.stored} in SQL; the API listed {o.api_runs} run(s)")
    checks = {
        "drift detected from the drift point on": drift,
        "an alert delivered": alerted,
        "a run accepted, its candidate better than the champion": accepted,
        f"{len(STEPS)} canary steps judged, promoted": promoted,
        f"accuracy after promotion within {1 - TARGET:.0%} of pre-drift": recovered,
        "every event sent is in SQL": o.stored == o.sent,
        "the Evidently report written": o.html is not None,
        "the HTTP API answered": bool(o.api_runs),
    }
    missed = [what for what, ok in checks.items() if not ok]
    if missed:
        print(f"demo: FAILED - not: {'; '.join(missed)}")
        return False
    print("demo: OK - drift detected, alerted, retrained, rolled out and promoted; accuracy back")
    return True
