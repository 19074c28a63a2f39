"""The ``file`` router: the split and the model URIs in one JSON file that a serving
layer reads (the demo's and the benches' model server).

The file, UTF-8 JSON, one object::

    {
      "model": "fraud",
      "stable": {"version": "v12", "uri": "file:///models/fraud/v12.skops",
                 "sha256": "9f2c…"},
      "canary": {"version": "v13", "uri": "file:///models/fraud/v13.skops",
                 "sha256": "41ab…"},
      "canary_percent": 25,
      "updated_at": "2026-12-04T10:15:00Z"
    }

- ``canary`` is ``null`` when no canary is served; ``canary_percent`` is then 0.
- ``canary_percent`` is an integer from 0 to 100: the share of requests the
  reader sends to ``canary``, the rest to ``stable``.
- ``sha256`` is the hex digest of the artifact's bytes; a reader checks it
  before it loads the artifact.
- ``updated_at`` is when the split last changed (UTC, ISO 8601); a repeated call
  that changes nothing does not rewrite the file.

The file is always replaced whole: written to a temporary file in the same
directory, flushed to disk, then renamed over the old one (``os.replace``, atomic
on POSIX file systems), so a reader sees the old content or the new, never a
partial file. A reader should open the path anew (or check its modification
time) for every change it wants to see; an open descriptor keeps the old file.

No file yet means stable only: :meth:`FileRouter.get_weights` reports 0% with no
versions. A file that is not in this format, or names another model, is a fatal
:class:`RouterError` naming the path. Promotion and rollback are done as soon as
the file says so: the reader applies the split on its next read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split, Target, check_percent

_FATAL_OS_ERRORS = (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError)


@dataclass(frozen=True, slots=True)
class RolloutFile:
    """The content of the file, as a reader uses it."""

    model: str
    stable: Target
    canary: Target | None
    canary_percent: int
    updated_at: str

    def split(self) -> Split:
        return Split(
            self.canary_percent,
            self.stable.version,
            self.canary.version if self.canary is not None else None,
        )


def load(path: str | os.PathLike[str]) -> RolloutFile | None:
    """The file at ``path``, or None when there is none; raises a fatal
    :class:`RouterError` naming the path when it is not a rollout file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _os_error(f"read {path}", exc) from exc
    try:
        return _parse(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise RouterError(
            f"rollout file {path}: not a rollout file: {exc}", retriable=False
        ) from exc


def _parse(raw: Any) -> RolloutFile:
    if not isinstance(raw, dict):
        raise TypeError("expected a JSON object")
    percent = raw["canary_percent"]
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"canary_percent: expected an integer from 0 to 100, got {percent!r}")
    canary = None if raw["canary"] is None else _target("canary", raw["canary"])
    if canary is None and percent != 0:
        raise ValueError(f"canary_percent is {percent} but there is no canary")
    for key in ("model", "updated_at"):
        if not isinstance(raw[key], str):
            raise TypeError(f"{key}: expected a string")
    return RolloutFile(raw["model"], _target("stable", raw["stable"]), canary, percent,
                       raw["updated_at"])  # fmt: skip


def _target(key: str, raw: Any) -> Target:
    if not isinstance(raw, dict):
        raise TypeError(f"{key}: expected an object")
    fields = [raw[name] for name in ("version", "uri", "sha256")]
    if not all(isinstance(value, str) and value for value in fields):
        raise TypeError(f"{key}: version, uri and sha256 must be non-empty strings")
    return Target(*fields)


def _document(state: RolloutFile) -> dict[str, Any]:
    def target(t: Target | None) -> Mapping[str, str] | None:
        return None if t is None else {"version": t.version, "uri": t.uri, "sha256": t.sha256}

    return {
        "model": state.model,
        "stable": target(state.stable),
        "canary": target(state.canary),
        "canary_percent": state.canary_percent,
        "updated_at": state.updated_at,
    }


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same directory (the
    rename must not cross file systems), fsynced, renamed over ``path``, and the
    directory fsynced so that the rename survives a crash. The new file keeps the old
    one's permissions (readable by all when there was none: the reader may run as
    another user)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _now() -> datetime:
    return datetime.now(UTC)


class FileRouter:
    """One model's split in the JSON file at ``path`` (format in the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: str,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self._clock = clock

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        check_percent(canary_percent)
        return self._write(stable, canary, canary_percent).split()

    def get_weights(self) -> Split:
        state = self._read()
        return Split(0) if state is None else state.split()

    def promote(self, candidate: Target) -> Progress:
        self._write(candidate, None, 0)
        return Progress(True)

    def rollback(self, stable: Target) -> Progress:
        self._write(stable, None, 0)
        return Progress(True)

    def _read(self) -> RolloutFile | None:
        state = load(self.path)
        if state is not None and state.model != self.model:
            raise RouterError(
                f"rollout file {self.path}: holds model {state.model!r}, not {self.model!r}",
                retriable=False,
            )
        return state

    def _write(self, stable: Target, canary: Target | None, percent: int) -> RolloutFile:
        current = self._read()
        if current is not None and (current.stable, current.canary, current.canary_percent) == (
            stable,
            canary,
            percent,
        ):
            return current
        stamp = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        state = RolloutFile(self.model, stable, canary, percent, stamp)
        data = (json.dumps(_document(state), indent=2) + "\n").encode("utf-8")
        try:
            write_atomically(self.path, data)
        except OSError as exc:
            raise _os_error(f"write {self.path}", exc) from exc
        return state


def _os_error(what: str, exc: Exception) -> RouterError:
    """A file system error: permissions and a wrong or missing directory stay wrong; a
    full disk or an I/O error may clear."""
    retriable = isinstance(exc, OSError) and not isinstance(exc, _FATAL_OS_ERRORS)
    return RouterError(f"rollout file: {what}: {exc}", retriable=retriable)
