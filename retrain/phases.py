"""One handler per active phase. A handler observes, decides and records; the
:class:`retrain.runs.RunDriver` commits what it recorded, then runs its action.

Handlers never raise for a job's failure: a failed, timed-out or malformed
job ends the run as ``failed`` with the reason, and nothing else changes.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db.errors import StoreError
from db.registry import RegistryRepository, Stage
from db.runs import GateRecord, RetrainRunRow, RunRepository
from retrain.errors import MalformedResult
from retrain.executors.base import (
    RESULT_LIMIT_BYTES,
    JobPhase,
    JobSpec,
    JobStatus,
    artifact_outside,
)
from retrain.gates import Verdict, judge
from retrain.lifecycle import Export, ExportFailure, Handler, Loop, Phase, Step
from retrain.storage import filesystem, is_s3

_LOG_TAIL = 4096


def _failed(run: RetrainRunRow, reason: str) -> Step:
    run.failure_reason = reason
    return Step(Phase.FAILED, reason)


def pending(loop: Loop, session: Session, run: RetrainRunRow) -> Step:
    """Start training once the run's data is exported; until then, ask for the export.

    The export runs after this step commits, outside the run's row lock (it can take
    minutes, and a cancel must not wait for it): here the champion and the data's
    destination are recorded and the export is asked for; a later tick finds the
    renamed file (:func:`export`) and starts training.
    """
    champion = RegistryRepository(session).production(run.model)
    if champion is None:
        return _failed(
            run,
            f"model {run.model} has no production version to validate against; register "
            f"the serving model with: driftwatch models register --model {run.model} "
            "--version V --uri URI",
        )
    run.champion_version_id = champion.id
    dest = loop.settings.data_path(run.model, run.id)
    location = loop.settings.data_location(run.model, run.id)
    upload = None if location == str(dest) else location
    run.data_uri = location
    if not data_exists(location):
        due = Export(run.model, run.data_from, run.data_to, dest, upload)
        return Step(note=f"exporting the training data to {location}", export=due)
    run.data_rows = _rows(location)
    spec = loop.train_spec(run, session)
    return Step(
        Phase.TRAINING,
        f"{run.data_rows} labelled rows exported; champion {champion.version}",
        launch=spec,
    )


def export(loop: Loop, due: Export) -> ExportFailure | None:
    """Write the export, outside any transaction; None once the file is in place, or
    while another process is writing it.

    The rename is what makes the export happen once: a crash before it leaves no
    file, and the next tick exports again. Two drivers of one run (two replicas, a
    ``driftwatch retrain --wait`` beside the service) would both find the file
    missing while the first still writes it, so the writer holds an exclusive
    ``flock`` on ``<dest>.lock`` for the export: the second one sees it held and
    leaves the export to it. The kernel drops the lock of a process that dies, so a
    writer killed mid-export never blocks the next attempt. Each attempt still
    writes a partial file of its own.

    With ``retrain.data_uri`` (``due.upload``) the file is staged in the workdir as
    above, under the same lock, and then uploaded: one PUT, so the object appears whole
    or not at all, and its presence is what the next tick looks for. A crash between
    the rename and the upload leaves the staged file, which the next attempt uploads.
    An object already there is never uploaded again. What the lock cannot cover is two
    drivers on two hosts (a leader failover, or ``driftwatch retrain --wait`` elsewhere)
    that both look before either uploads: the second PUT then replaces the first's
    object whole, a job may already read it, and pyarrow reads in ranges. pyarrow's S3
    client cannot put conditionally (If-None-Match), which would close that window.
    """
    due.dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = due.dest.with_name(f"{due.dest.name}.lock")
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # another process exports it; a later tick finds its file
        if due.upload is None and due.dest.exists():  # written by the holder before us
            return None
        failure = None if due.dest.exists() else _export_locked(loop, due)
        if failure is None and due.upload is not None and not data_exists(due.upload):
            failure = _upload(due.dest, due.upload)
        if failure is None:
            # Safe to remove while held: whoever locks it (or a new one) next finds the
            # file in place. After a failure it stays, or two could lock two inodes.
            lock_path.unlink(missing_ok=True)
        return failure


def _export_locked(loop: Loop, due: Export) -> ExportFailure | None:
    partial = due.dest.with_name(f"{due.dest.name}.{uuid.uuid4().hex}.partial")
    try:
        rows = loop.exporter(due.model, due.start, due.end, str(partial))
    except StoreError as exc:  # the archive's errors (db.archive.errors) derive from it
        partial.unlink(missing_ok=True)
        if exc.retriable:
            return ExportFailure(str(exc), retriable=True)
        return ExportFailure(f"exporting the training data failed: {exc}", retriable=False)
    if rows == 0:
        partial.unlink(missing_ok=True)
        return ExportFailure(
            f"no labelled events of {due.model} archived between "
            f"{due.start.isoformat()} and {due.end.isoformat()}",
            retriable=False,
        )
    os.replace(partial, due.dest)
    return None


def _upload(staged: Path, location: str) -> ExportFailure | None:
    try:
        fs, path = filesystem(location)
        fs.put_file(str(staged), path)
    except (OSError, ValueError) as exc:  # pyarrow's and fsspec's storage errors
        return ExportFailure(f"uploading the training data to {location}: {exc}", True)
    return None


def data_exists(location: str) -> bool:
    if not is_s3(location):
        return Path(location).exists()
    fs, path = filesystem(location)
    return bool(fs.exists(path))


def export_failed(loop: Loop, run: RetrainRunRow, failure: ExportFailure) -> Step:
    """The step after a failed export: a retriable failure keeps the run pending for as
    long as the training phase's timeout, counted from the run's start; any other fails it."""
    if not failure.retriable:
        return _failed(run, failure.reason)
    waited = loop.clock() - run.created_at
    if waited < loop.models[run.model].train_timeout:
        return Step(note=f"export failed, retrying: {failure.reason}")
    seconds = int(waited.total_seconds())
    return _failed(
        run, f"exporting the training data kept failing for {seconds} s: {failure.reason}"
    )


def _rows(location: str) -> int:
    import pyarrow.parquet as pq

    fs, path = filesystem(location)
    with fs.open(path, "rb") as source:
        return int(pq.read_metadata(source).num_rows)


def training(loop: Loop, session: Session, run: RetrainRunRow) -> Step:
    spec = loop.train_spec(run, session)
    status = loop.executor.observe(spec)
    waiting = _waiting(loop, session, run, spec, status, "training")
    if waiting is not None:
        return waiting
    run.train_log_tail = _tail(status.log_tail)
    if status.phase is JobPhase.FAILED:
        return _failed(run, f"training failed: {status.reason or 'no reason given'}")
    try:
        candidate = _register(loop, session, run, status.result or {})
    except MalformedResult as exc:
        return _failed(run, f"training result unusable: {exc}")
    run.candidate_version_id = candidate.id
    validate = loop.validate_spec(run, session)
    return Step(
        Phase.VALIDATING,
        f"candidate {candidate.version} trained ({_metrics(candidate.metric_values)})",
        launch=validate,
    )


def validating(loop: Loop, session: Session, run: RetrainRunRow) -> Step:
    spec = loop.validate_spec(run, session)
    status = loop.executor.observe(spec)
    waiting = _waiting(loop, session, run, spec, status, "validation")
    if waiting is not None:
        return waiting
    run.validate_log_tail = _tail(status.log_tail)
    if status.phase is JobPhase.FAILED:
        return _failed(run, f"validation failed: {status.reason or 'no reason given'}")
    try:
        judgement = judge(loop.models[run.model].gates, status.result or {})
    except MalformedResult as exc:
        return _failed(run, f"validation result unusable: {exc}")
    RunRepository(session).add_gates(
        run.id,
        (
            GateRecord(r.gate, r.metric, r.slice, r.champion, r.candidate, r.threshold, r.passed)
            for r in judgement.results
        ),
    )
    run.verdict = str(judgement.verdict)
    if judgement.verdict is Verdict.ACCEPTED:
        return Step(Phase.ACCEPTED, judgement.reason())
    registry = RegistryRepository(session)
    candidate = registry.by_id(run.candidate_version_id) if run.candidate_version_id else None
    if candidate is not None:
        registry.set_stage(candidate, Stage.REJECTED, loop.clock())
    return Step(Phase.REJECTED, judgement.reason())


def _waiting(
    loop: Loop,
    session: Session,
    run: RetrainRunRow,
    spec: JobSpec,
    status: JobStatus,
    what: str,
) -> Step | None:
    """The step while the job has no outcome yet; None once it has one."""
    launched = run.launched_at(spec.mode)
    if status.phase is JobPhase.MISSING:
        if launched is not None:
            # It ran, or runs no more, and its result is gone with it (a Kubernetes Job
            # deleted by its TTL while the service was down): launching it again would
            # train twice.
            return _failed(run, f"{what} job {spec.name} disappeared before its result was read")
        # Never launched: a crash between the commit and the launch.
        return Step(note=f"{what} job {spec.name} missing, launching", launch=spec)
    if status.phase is JobPhase.UNSTARTED:
        return Step(note=f"{what} job {spec.name} never started, launching again", launch=spec)
    if launched is None and status.phase is JobPhase.RUNNING:
        # The launch returned but its record was lost (a crash or a database error in
        # between): the job exists, so record it now, before it can finish and vanish.
        RunRepository(session).record_launch(run.id, spec.mode, loop.clock())
    if status.phase is JobPhase.RUNNING:
        deadline = run.phase_deadline
        if deadline is not None and loop.clock() >= deadline:
            seconds = int(spec.timeout.total_seconds())
            timed_out = _failed(run, f"{what} timed out after {seconds} s")
            timed_out.act = lambda: loop.executor.cancel(spec)
            return timed_out
        return Step()
    return None


def _register(loop: Loop, session: Session, run: RetrainRunRow, result: Mapping[str, Any]) -> Any:
    uri, sha256 = result.get("model_uri"), result.get("sha256")
    if not isinstance(uri, str) or not isinstance(sha256, str) or len(sha256) != 64:
        raise MalformedResult("no model_uri and 64-digit sha256")
    outside = artifact_outside(uri, loop.settings.output_uri(run.model, run.id))
    if outside is not None:
        raise MalformedResult(outside)
    metrics = result.get("metrics")
    if not isinstance(metrics, Mapping):
        raise MalformedResult("no metrics mapping")
    data_range = result.get("data_range") or {}
    training = _training(result.get("fitted"))
    return RegistryRepository(session).register(
        run.model,
        f"run-{run.id}",
        uri,
        sha256,
        Stage.CANDIDATE,
        loop.clock(),
        metrics=metrics,
        run_id=run.id,
        data_from=_time(data_range.get("from")) or run.data_from,
        data_to=_time(data_range.get("to")) or run.data_to,
        training=training,
    )


def _training(fitted: Any) -> Mapping[str, Any] | None:
    """The trainer's record of what it fitted, stored with the version; a trainer that
    gives none (one written before the record existed) leaves it empty. A record that is
    not a JSON object, or larger than a job's whole result may be, breaks the contract."""
    if fitted is None:
        return None
    if not isinstance(fitted, Mapping):
        raise MalformedResult(f"fitted: expected a JSON object, got {type(fitted).__name__}")
    try:
        size = len(json.dumps(fitted, sort_keys=True).encode())
    except (TypeError, ValueError) as exc:
        raise MalformedResult(f"fitted: not JSON: {exc}") from exc
    if size > RESULT_LIMIT_BYTES:
        raise MalformedResult(f"fitted: {size} bytes, more than {RESULT_LIMIT_BYTES}")
    return fitted


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _tail(text: str | None) -> str | None:
    return None if text is None else text[-_LOG_TAIL:]


def _metrics(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(values.items()) if isinstance(v, int | float)
    )


HANDLERS: Mapping[Phase, Handler] = {
    Phase.PENDING: pending,
    Phase.TRAINING: training,
    Phase.VALIDATING: validating,
}
