"""The ``driftwatch`` commands for reference profiles, evaluation and reports."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.cli.common import load, require_model, sessions_for
from service.errors import ServiceError


def cmd_reference_build(args: argparse.Namespace) -> int:
    from service.monitoring import reference

    cfg = load(args)
    require_model(cfg, args.model)
    spec = cfg.model_specs()[args.model]
    sessions = sessions_for(cfg, args)
    if args.from_stream:
        start, end = (reference.parse_instant(t) for t in args.from_stream)
        if end <= start:
            raise ServiceError("--from-stream: END must be after START")
        columns, events = reference.stream_sample(sessions, spec, start, end)
        source = (
            f"stream {start.isoformat()} .. {end.isoformat()} "
            f"(sample of {len(columns[spec.features[0].name])} of {events} events)"
        )
    else:
        if not args.file:
            raise ServiceError("give a reference FILE (CSV or Parquet) or --from-stream START END")
        path = Path(args.file)
        columns = reference.read_reference(path, spec, args.prediction_column, not args.quiet)
        source = f"file {path.resolve()}"
    built = reference.profile_columns(
        columns,
        spec,
        cfg.models[args.model],
        source,
        args.prediction_column,
        bins=args.bins,
        sample_size=args.sample_size,
    )
    info = reference.store(sessions, args.model, built, datetime.now(UTC))
    extra = "" if built.prediction is None else " and the prediction"
    print(
        f"reference profile v{info.version} of model {args.model}: {info.rows} rows, "
        f"{len(built.features.features)} features{extra} ({source})"
    )
    return 0


def cmd_reference_list(args: argparse.Namespace) -> int:
    from db.profiles import ProfileRepository

    cfg = load(args)
    with sessions_for(cfg, args)() as session:
        infos = ProfileRepository(session).versions(args.model)
    print(f"{'model':<14} {'version':>7} {'rows':>9}  {'created (UTC)':<19}  source")
    for i in infos:
        print(
            f"{i.model:<14} {i.version:>7} {i.rows:>9}  "
            f"{i.created_at:%Y-%m-%d %H:%M:%S}  {i.source}"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from service.wiring.monitoring import build_evaluator, build_performance_evaluator

    cfg = load(args)
    sessions = sessions_for(cfg, args)
    written = build_evaluator(cfg, sessions, None).tick()
    judged = build_performance_evaluator(cfg, sessions, None).tick()
    print(f"{len(written)} new drift report(s), {len(judged)} new performance report(s)")
    return 0


def cmd_performance(args: argparse.Namespace) -> int:
    from db.performance_reports import PerformanceReportRepository

    cfg = load(args)
    with sessions_for(cfg, args)() as session:
        rows = PerformanceReportRepository(session).rows(args.model, args.limit)
    fields = ("accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "mape")
    if args.json:
        out = [
            {
                "id": r.id,
                "model": r.model,
                "model_version": r.model_version,
                "window_start": r.window_start.isoformat(),
                "drift_report_id": r.drift_report_id,
                "predicted": r.predicted,
                "labeled": r.labeled,
                "unlabeled": r.unlabeled,
                "label_coverage": r.label_coverage,
                **{f: getattr(r, f) for f in fields},
                "degraded": r.degraded,
                "alarms": r.alarms,
                "alarm_detectors": [d for d in r.alarm_detectors.split(",") if d],
                "concept_drift": r.concept_drift,
                "verdict": r.verdict,
            }
            for r in rows
        ]
        print(json.dumps(out))
        return 0
    print(
        f"{'id':>5} {'model':<10} {'version':<8} {'window start (UTC)':<19} {'labeled':>8} "
        f"{'coverage':>8} {'metric':>8} {'degraded':>9} {'concept':>7}  alarms"
    )
    for r in rows:
        metric = r.accuracy if r.task == "classification" else r.rmse
        shown = "n/a" if metric is None else f"{metric:.4f}"
        coverage = "n/a" if r.label_coverage is None else f"{r.label_coverage:.0%}"
        flag = {None: "n/a", True: "DEGRADED", False: "-"}[r.degraded]
        concept = {None: "n/a", True: "DRIFT", False: "-"}[r.concept_drift]
        alarms = f"{r.alarms} ({r.alarm_detectors})" if r.alarms else "-"
        print(
            f"{r.id:>5} {r.model:<10} {r.model_version:<8} {r.window_start:%Y-%m-%d %H:%M:%S} "
            f"{r.labeled:>8} {coverage:>8} {shown:>8} {flag:>9} {concept:>7}  {alarms}"
        )
    return 0


def cmd_reports(args: argparse.Namespace) -> int:
    from db.reports import DriftReportRepository

    cfg = load(args)
    with sessions_for(cfg, args)() as session:
        repo = DriftReportRepository(session)
        rows = repo.summaries(args.model, args.limit)
        details = {r.id: repo.get(r.id) for r in rows}
    if args.json:
        print(json.dumps([_report_json(r, details[r.id]) for r in rows]))
        return 0
    print(
        f"{'id':>5} {'model':<10} {'version':<8} {'window start (UTC)':<19} {'events':>7} "
        f"{'drifted':>8} {'dataset':>8}  top drifted features"
    )
    for r in rows:
        detail = details[r.id]
        top = ", ".join(f.feature for f in detail.top_drifted()) if detail else ""
        share = "n/a" if r.drifted_share is None else f"{r.drifted_share:.0%}"
        flag = {None: "n/a", True: "DRIFT", False: "-"}[r.dataset_drift]
        print(
            f"{r.id:>5} {r.model:<10} {r.model_version:<8} {r.window_start:%Y-%m-%d %H:%M:%S} "
            f"{r.events:>7} {share:>8} {flag:>8}  {top}"
        )
    return 0


def _report_json(r: Any, detail: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": r.model,
        "model_version": r.model_version,
        "window_start": r.window_start.isoformat(),
        "window_end": r.window_end.isoformat(),
        "profile_version": r.profile_version,
        "source": r.source,
        "events": r.events,
        "drifted_share": r.drifted_share,
        "dataset_drift": r.dataset_drift,
        "confirmed": r.confirmed,
        "prediction_drifted": r.prediction_drifted,
        "features": [
            {
                "name": f.feature,
                "method": f.method,
                "score": f.score,
                "p_value": f.p_value,
                "threshold": f.threshold,
                "drifted": f.drifted,
                "current_null_share": f.current_null_share,
                "reference_null_share": f.reference_null_share,
                "unseen_categories": list(f.unseen_categories),
            }
            for f in (detail.features if detail else ())
        ],
    }


def cmd_report_show(args: argparse.Namespace) -> int:
    from db.reports import DriftReportRepository

    cfg = load(args)
    with sessions_for(cfg, args)() as session:
        detail = DriftReportRepository(session).get(args.report_id)
    if detail is None:
        raise ServiceError(f"no drift report with id {args.report_id}")
    if args.json:
        print(json.dumps(_report_json(detail.summary, detail)))
        return 0
    s = detail.summary
    print(
        f"report {s.id}: {s.model} {s.model_version} window {s.window_start.isoformat()} "
        f"({s.events} events, from {s.source}), profile v{s.profile_version}"
    )
    print(f"{'feature':<20} {'method':<14} {'score':>9} {'p-value':>9} {'threshold':>9}  verdict")
    for f in detail.features:
        verdict = {None: "insufficient data", True: "DRIFT", False: "-"}[f.drifted]
        score = "" if f.score is None else f"{f.score:.4f}"
        p = "" if f.p_value is None else f"{f.p_value:.4f}"
        limit = "" if f.threshold is None else f"{f.threshold:g}"
        print(f"{f.feature:<20} {f.method or '':<14} {score:>9} {p:>9} {limit:>9}  {verdict}")
    share = "n/a" if s.drifted_share is None else f"{s.drifted_share:.0%}"
    print(f"drifted share {share}; dataset drift: {s.dataset_drift}; confirmed: {s.confirmed}")
    return 0


def cmd_report_html(args: argparse.Namespace) -> int:
    from service.monitoring.rendering import ReportNotFound, job_for, render

    cfg = load(args)
    try:
        html = render(job_for(sessions_for(cfg, args), args.report_id))
    except ReportNotFound as exc:
        raise ServiceError(str(exc)) from None
    Path(args.output).write_text(html, encoding="utf-8")
    print(f"wrote {args.output} ({len(html) // 1024} KiB)")
    return 0


def add_drift_commands(sub: Any) -> None:
    """Reference profiles, evaluation and reports."""
    ref = sub.add_parser("reference", help="reference profiles")
    ref_sub = ref.add_subparsers(dest="reference_command", required=True)
    build = ref_sub.add_parser("build", help="build and store a model's next reference profile")
    build.add_argument("--config")
    build.add_argument("--model", required=True)
    build.add_argument("file", nargs="?", help="reference data, CSV or Parquet")
    build.add_argument(
        "--from-stream",
        nargs=2,
        metavar=("START", "END"),
        help="sample the model's stored windows in [START, END) instead of a file",
    )
    build.add_argument(
        "--prediction-column", default="prediction", help="column holding the model's output"
    )
    build.add_argument("--bins", type=int, help="quantile bins per numerical feature")
    build.add_argument("--sample-size", type=int, help="values kept per feature")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=cmd_reference_build)
    lst = ref_sub.add_parser("list", help="list stored profile versions")
    lst.add_argument("--config")
    lst.add_argument("--model")
    lst.set_defaults(func=cmd_reference_list)

    ev = sub.add_parser(
        "evaluate", help="evaluate closed windows now (the service does it on a timer)"
    )
    ev.add_argument("--config")
    ev.set_defaults(func=cmd_evaluate)

    reps = sub.add_parser("reports", help="list drift reports, newest last")
    reps.add_argument("--config")
    reps.add_argument("--model")
    reps.add_argument("--limit", type=int, default=50)
    reps.add_argument("--json", action="store_true")
    reps.set_defaults(func=cmd_reports)

    perf = sub.add_parser(
        "performance", help="list performance reports (accuracy or RMSE per labelled window)"
    )
    perf.add_argument("--config")
    perf.add_argument("--model")
    perf.add_argument("--limit", type=int, default=50)
    perf.add_argument("--json", action="store_true")
    perf.set_defaults(func=cmd_performance)

    rep = sub.add_parser("report", help="one drift report")
    rep_sub = rep.add_subparsers(dest="report_command", required=True)
    show = rep_sub.add_parser("show", help="per-feature verdicts")
    show.add_argument("report_id", type=int)
    show.add_argument("--config")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_report_show)
    html = rep_sub.add_parser("html", help="render the report with Evidently")
    html.add_argument("report_id", type=int)
    html.add_argument("-o", "--output", required=True, help="HTML file to write")
    html.add_argument("--config")
    html.set_defaults(func=cmd_report_html)
