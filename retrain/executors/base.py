"""The executor protocol: how a training or validation job is launched and watched.

A job is named after its run and mode, so every action on it is idempotent: a
second ``launch`` of the same name adopts the job instead of starting another,
which is what makes the run lifecycle safe to resume after a crash. A name only
protects while the job exists, though: a Kubernetes Job deleted after it finished
could be created again. So the run records in SQL that a launch returned
(:mod:`retrain.runs`), and a job ``MISSING`` after that is lost, never relaunched;
``UNSTARTED`` is the one absent job a backend may start again safely. Backends:
``local`` (a subprocess, :mod:`retrain.executors.local`), ``kubernetes`` (a
``batch/v1`` Job, :mod:`retrain.executors.kubernetes`: a 409 on create is the
adoption) and ``fake`` (in process, for tests and demos); one contract test
runs over all three (``tests/unit/retrain/test_executor_contract.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

# What a job may write as its result, in bytes (the Kubernetes termination message limit).
RESULT_LIMIT_BYTES = 4096
_DNS_MAX = 63

# The base environment a local job inherits from the service, by name: what a process
# needs to run an interpreter, find its files and format text. Everything else of the
# service's environment (database URL, alert keys, cloud credentials, PGPASSWORD) stays
# out unless a model's ``retrain.pass_env`` names it. Kubernetes Jobs get none of the
# service's environment: their base is the image's and the template's.
BASE_ENV = frozenset(
    {
        "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
        # Where TLS finds its trust roots (a trainer may write to an object store).
        "SSL_CERT_FILE", "SSL_CERT_DIR",
        # The interpreter's own settings: where it and its packages are, how it runs.
        "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE",
        "PYTHONFAULTHANDLER", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX",
        "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONWARNINGS", "PYTHONDEVMODE",
        "PYTHONUNBUFFERED", "VIRTUAL_ENV",
    }
)  # fmt: skip
BASE_ENV_PREFIXES = ("LC_",)


def base_env(environ: Mapping[str, str], passed: Iterable[str] = ()) -> dict[str, str]:
    """The part of ``environ`` a job may see: :data:`BASE_ENV`, ``LC_*``, and ``passed``
    (the names a model's config lists), never a ``DRIFTWATCH_*`` setting of the service."""
    wanted = BASE_ENV | set(passed)
    return {
        k: v
        for k, v in environ.items()
        if (k in wanted or k.startswith(BASE_ENV_PREFIXES)) and not k.startswith("DRIFTWATCH_")
    }


class Mode(StrEnum):
    TRAIN = "train"
    VALIDATE = "validate"


class JobPhase(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # No trace of the job: never launched, or gone (deleted, cleaned up) since; only the
    # run's launch record tells which.
    MISSING = "missing"
    # Launched, but it never started and nothing will start it (the local executor's
    # wrapper died before it began): launching again starts it, once.
    UNSTARTED = "unstarted"


@dataclass(frozen=True)
class JobSpec:
    """One job: a run's training or validation step."""

    run_id: int
    model: str
    mode: Mode
    data_uri: str
    output_uri: str
    timeout: timedelta
    env: Mapping[str, str] = field(default_factory=dict)
    # Names of the service's environment a local job receives too (models.*.retrain.pass_env).
    pass_env: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``driftwatch-<model>-<run>-<mode>``: deterministic, DNS-safe, at most 63 characters."""
        tail = f"-{self.run_id}-{self.mode.value}"
        model = re.sub(r"[^a-z0-9-]+", "-", self.model.lower()).strip("-") or "model"
        room = _DNS_MAX - len("driftwatch-") - len(tail)
        return f"driftwatch-{model[:room].rstrip('-')}{tail}"

    def fingerprint(self) -> str:
        """A digest of everything the job does, to tell a job from another of the same name."""
        body = {
            "run_id": self.run_id,
            "model": self.model,
            "mode": self.mode.value,
            "data_uri": self.data_uri,
            "output_uri": self.output_uri,
            "timeout": self.timeout.total_seconds(),
            "env": dict(sorted(self.env.items())),
        }
        if self.pass_env:  # only when given: directories of earlier jobs stay adoptable
            body["pass_env"] = sorted(self.pass_env)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def contract_env(self, result_path: str) -> dict[str, str]:
        """The environment contract every backend gives the job (extras from ``env`` last)."""
        env = {
            "DRIFTWATCH_RUN_ID": str(self.run_id),
            "DRIFTWATCH_MODEL": self.model,
            "DRIFTWATCH_MODE": self.mode.value,
            "DRIFTWATCH_DATA_URI": self.data_uri,
            "DRIFTWATCH_OUTPUT_URI": self.output_uri,
            "DRIFTWATCH_RESULT_PATH": result_path,
        }
        env.update(self.env)
        return env


@dataclass(frozen=True)
class JobStatus:
    """What a job is doing; ``SUCCEEDED`` carries the parsed result, ``FAILED`` a reason."""

    phase: JobPhase
    reason: str | None = None
    log_tail: str | None = None
    result: Mapping[str, Any] | None = None


class Executor(Protocol):
    def launch(self, spec: JobSpec) -> bool:
        """Start the job; a second launch of the same ``spec.name`` adopts, never starts twice.

        True when the job now exists (started or adopted); False when the backend refused
        it for good, and ``observe`` reports why. Retriable trouble raises.
        """
        ...

    def observe(self, spec: JobSpec) -> JobStatus:
        """The job's current state."""
        ...

    def cancel(self, spec: JobSpec) -> None:
        """Stop the job if it runs; idempotent."""
        ...

    def close(self) -> None:
        """Release what following jobs holds (threads, connections) when the service
        stops; the jobs themselves run on, and a later process adopts them."""
        ...


# A failure reason keeps this much of the job's own message at each end: its start says
# what failed, its end usually where (a path, a value, an exception's last words), and
# the whole reason stays a line an operator reads, an alert carries and a row stores.
REASON_HEAD = 240
REASON_TAIL = 240
ELISION = " … "


def shorten(text: str, head: int = REASON_HEAD, tail: int = REASON_TAIL) -> str:
    """``text`` whole when it fits, else its first ``head`` and last ``tail`` characters
    joined by :data:`ELISION`: shortened in the middle, never dropped."""
    if len(text) <= head + len(ELISION) + tail:
        return text
    return f"{text[:head]}{ELISION}{text[-tail:]}"


def last_line(log: str | None) -> str | None:
    """The last non-empty line of a job's log, stripped; None when there is none. The
    trainer's contract is to end with one line on stderr that says why it failed."""
    for line in reversed((log or "").splitlines()):
        if line.strip():
            return line.strip()
    return None


def with_message(reason: str, log: str | None) -> str:
    """``reason: <the log's last line, shortened>``, or ``reason`` when the log is empty."""
    line = last_line(log)
    return reason if line is None else f"{reason}: {shorten(line)}"


# How far back from a job's log end its last line is looked for (both executors): far
# enough for any message a trainer means a person to read, bounded whatever it printed.
LAST_LINE_BYTES = 1 << 20


def last_bytes(
    chunks: Iterable[bytes],
    keep: int,
    limit: int,
    deadline: float,
    clock: Callable[[], float],
) -> tuple[bytes, bool] | None:
    """The last ``keep`` bytes of a stream and whether earlier bytes were dropped; None
    once more than ``limit`` bytes came or the ``clock`` passed ``deadline``. A job's
    log is a peer's output: a line has no length limit (a progress bar redrawn with a
    carriage return for hours is one line), so what is held stays ``keep`` bytes however
    much is read, and the read itself ends."""
    kept = bytearray()
    read, cut = 0, False
    for chunk in chunks:
        read += len(chunk)
        if read > limit or clock() > deadline:
            return None
        kept += chunk
        if len(kept) > keep:
            del kept[: len(kept) - keep]
            cut = True
    return bytes(kept), cut


def result_status(data: bytes | None, log_tail: str | None, size: int | None = None) -> JobStatus:
    """Judge what a job that exited 0 left as its result (shared by every backend).
    ``size`` is the whole result's when ``data`` holds only its first bytes."""
    if data is None:
        return JobStatus(JobPhase.FAILED, "no result written", log_tail)
    size = max(size or 0, len(data))
    if size > RESULT_LIMIT_BYTES:
        reason = f"result is {size} bytes, more than {RESULT_LIMIT_BYTES}"
        return JobStatus(JobPhase.FAILED, reason, log_tail)
    try:
        result = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return JobStatus(JobPhase.FAILED, f"result is not valid JSON: {exc}", log_tail)
    if not isinstance(result, dict):
        reason = f"result is not a JSON object but {type(result).__name__}"
        return JobStatus(JobPhase.FAILED, reason, log_tail)
    return JobStatus(JobPhase.SUCCEEDED, None, log_tail, result)


def _location(uri: str) -> tuple[str, str, str] | str:
    """``(scheme, authority, path)`` of a URI or a local path (``file``, made absolute); a
    reason when it has parts an artifact's location should not: a query, a fragment, a
    NUL, a ``..`` segment (even percent-encoded: one store decodes what another does not,
    and a symlink makes ``a/link/..`` lead anywhere, so none is normalised away)."""
    if "\x00" in uri:
        return "it holds a NUL character"
    parts = urlsplit(uri) if "://" in uri else None
    raw = parts.path if parts is not None else uri
    if ".." in raw.split("/") or ".." in unquote(raw).split("/"):
        return "it climbs with '..'"
    if parts is None:
        return "file", "", os.path.abspath(uri)
    if parts.query or parts.fragment:
        return "it has a query or fragment"
    scheme = parts.scheme.lower()
    path = os.path.abspath(unquote(raw)) if scheme == "file" else posixpath.normpath(raw)
    return scheme, parts.netloc, path


def artifact_outside(uri: str, output_uri: str) -> str | None:
    """Why a trainer's ``model_uri`` is not a file inside its run's ``output_uri`` (same
    scheme and bucket or host, below the output prefix, no ``..``, and for local files no
    symbolic link that leads out); None when it is. A trainer's result is untrusted
    input: what it names becomes a registry version that others load."""
    where = f"model_uri {uri!r} is outside the run's output_uri {output_uri!r}"
    got, base = _location(uri), _location(output_uri)
    if isinstance(got, str) or isinstance(base, str):
        return f"{where}: {got if isinstance(got, str) else base}"
    if got[:2] != base[:2]:
        return f"{where}: another scheme or location"
    prefix = base[2].rstrip("/") + "/"
    if not got[2].startswith(prefix):
        return f"{where}: not below it"
    if got[0] == "file" and not os.path.realpath(got[2]).startswith(
        os.path.realpath(prefix).rstrip("/") + "/"
    ):
        return f"{where}: a symbolic link leads out of it"
    return None
