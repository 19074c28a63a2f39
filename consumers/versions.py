"""The version cap: how many model versions one window of a model takes.

Every ``model_version`` a prediction carries gets its own window sketches,
``window_aggregates`` rows, drift evaluations and detector states, so a stream of
new version strings would grow all of them without bound. :class:`VersionGate`
admits, per model and window:

- the *protected* versions, always: those the registry holds as ``production`` or
  ``canary`` (refreshed every ``refresh`` seconds; the last answer is kept while
  the database is unreachable), so the versions being served and judged are never
  the ones refused;
- the versions that already have rows of the window in ``window_aggregates``
  (read once per window, when the gate first meets it: written before a restart,
  or by another replica), and then the first others this consumer sees, while
  the window has fewer than ``max_versions`` unprotected versions.

The events of any other version go to the dead-letter topic with the reason
(``version_cap``), counted like every invalid event. The choice is made before the
archive and the aggregation, so a refused event is in no sketch, row or archive.

Bounds: a restart does not open the cap again (the stored versions fill it). Replicas
that meet a window at the same time each see only what the others have flushed by
then, so with R replicas a window holds at most ``R x max_versions`` unprotected
versions. The gate remembers the
``WINDOWS_PER_MODEL`` newest windows of each model; an event of an older window
(a partition far behind the others) is admitted only for a version live in one of
them, so even such a partition cannot open the cap again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from consumers.clients import SYSTEM_CLOCK, Clock
from consumers.errors import InvalidEvent, InvalidReason
from consumers.events import DecodedBatch, ModelCodec
from db.errors import StoreError, translating
from db.models import WindowAggregate
from db.registry import RegistryRepository, Stage
from drift.sketch import CategoryCaps

log = logging.getLogger(__name__)

WINDOWS_PER_MODEL = 64
Protected = Callable[[], Mapping[str, Collection[str]]]
Stored = Callable[[str, int, int], Collection[str]]  # (model, window start, width)
_SERVED = frozenset({str(Stage.PRODUCTION), str(Stage.CANARY)})


# The defaults of ``ingest.max_versions``, ``ingest.max_categories`` and
# ``ingest.max_category_length``: far above what a healthy model sends (a few versions
# per window, tens of categories, short codes), low enough that the worst a stream can
# do stays small (see the README's figure from bench/caps.py).
MAX_VERSIONS = 20
MAX_CATEGORIES = 1000
MAX_CATEGORY_LENGTH = 256
DEFAULT_CATEGORY_CAPS = CategoryCaps(MAX_CATEGORIES, MAX_CATEGORY_LENGTH)


@dataclass(frozen=True, slots=True)
class StreamCaps:
    """What one model's stream may make the consumer keep (``ingest.*`` in the config).

    ``max_versions`` unprotected versions per model and window (this module);
    ``categories`` the distinct values and value length of each categorical column
    of a window (:class:`drift.categories.CategoricalSketch`).
    """

    max_versions: int = MAX_VERSIONS
    categories: CategoryCaps = DEFAULT_CATEGORY_CAPS


DEFAULT_CAPS = StreamCaps()


def registry_versions(sessions: sessionmaker[Session]) -> Protected:
    """The production and canary versions of every model, read from the registry."""

    def read() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        with sessions() as session:
            for row in RegistryRepository(session).versions():
                if row.stage in _SERVED:
                    out.setdefault(row.model, set()).add(row.version)
        return out

    return read


def stored_versions(sessions: sessionmaker[Session]) -> Stored:
    """The versions that have rows of a model's window in ``window_aggregates``."""

    @translating
    def read(model: str, start: int, width: int) -> set[str]:
        w = WindowAggregate
        with sessions() as session:
            chosen = select(w.model_version).where(
                w.window_end == datetime.fromtimestamp(start + width, UTC),
                w.window_start == datetime.fromtimestamp(start, UTC),
                w.model == model,
            )
            return set(session.scalars(chosen.distinct()))

    return read


def _nothing() -> Mapping[str, Collection[str]]:
    return {}


def _none_stored(model: str, start: int, width: int) -> Collection[str]:
    return ()


class VersionGate:
    """Admits at most ``max_versions`` unprotected versions per model and window."""

    def __init__(
        self,
        max_versions: int,
        protected: Protected = _nothing,
        refresh: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
        stored: Stored = _none_stored,
    ) -> None:
        if max_versions < 1:
            raise ValueError(f"max_versions must be at least 1, got {max_versions}")
        self.max_versions = max_versions
        self._read_protected = protected
        self._stored = stored
        self._refresh = refresh
        self._clock = clock
        self._protected: Mapping[str, Collection[str]] = {}
        self._read_at: float | None = None
        # model -> window start -> admitted unprotected versions
        self._live: dict[str, dict[int, set[str]]] = {}

    def screen(self, decoded: DecodedBatch, codecs: Mapping[str, ModelCodec]) -> None:
        """Move the events of versions past the cap to ``decoded.invalid``; ``codecs``
        (the decoder's) give each model's window length."""
        if not decoded.events:
            return
        protected = self._current_protected()
        # In order of first appearance: the first versions seen are the ones admitted.
        pairs = dict.fromkeys((e.model, e.model_version) for e in decoded.events)
        if all(v in protected.get(m, ()) for m, v in pairs):
            return
        widths = {m: codecs[m].spec.window_seconds for m, _ in pairs}
        lo, hi = min(decoded.times), max(decoded.times)
        if all(lo // w == hi // w for w in widths.values()):
            # The common batch, within one window: one verdict per version, no walk
            # unless something is refused.
            by_pair = {
                (m, v): self._judge(m, v, int(lo // widths[m]) * widths[m], widths[m], protected)
                for m, v in pairs
            }
            if any(by_pair.values()):
                decoded.reject(
                    {
                        j: verdict
                        for j, e in enumerate(decoded.events)
                        if (verdict := by_pair[(e.model, e.model_version)]) is not None
                    }
                )
            return
        verdicts: dict[tuple[str, str, int], InvalidEvent | None] = {}
        refused: dict[int, InvalidEvent] = {}
        for j, (event, t) in enumerate(zip(decoded.events, decoded.times, strict=True)):
            width = widths[event.model]
            key = (event.model, event.model_version, int(t // width) * width)
            if key not in verdicts:
                verdicts[key] = self._judge(*key, width, protected)
            verdict = verdicts[key]
            if verdict is not None:
                refused[j] = verdict
        decoded.reject(refused)

    def _judge(
        self,
        model: str,
        version: str,
        start: int,
        width: int,
        protected: Mapping[str, Collection[str]],
    ) -> InvalidEvent | None:
        if version in protected.get(model, ()):
            return None
        windows = self._live.setdefault(model, {})
        live = windows.get(start)
        if live is None:
            if len(windows) >= WINDOWS_PER_MODEL and start < min(windows):
                # Older than every remembered window: only a recently live version.
                if any(version in seen for seen in windows.values()):
                    return None
                return self._refusal(model, version, start, stale=True)
            served = protected.get(model, ())
            live = windows[start] = {v for v in self._seed(model, start, width) if v not in served}
            if len(windows) > WINDOWS_PER_MODEL:
                del windows[min(windows)]
        if version in live:
            return None
        if len(live) < self.max_versions:
            live.add(version)
            return None
        return self._refusal(model, version, start, stale=False)

    def _refusal(self, model: str, version: str, start: int, stale: bool) -> InvalidEvent:
        when = datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z")
        if stale:
            detail = (
                f"version {version!r} of model {model!r} is not live in any recent window, "
                f"and the window starting {when} is older than the {WINDOWS_PER_MODEL} "
                "remembered (ingest.max_versions)"
            )
        else:
            detail = (
                f"model {model!r} already has {self.max_versions} live versions in the "
                f"window starting {when}; version {version!r} is not one of them, nor in "
                "production or canary (ingest.max_versions)"
            )
        return InvalidEvent(InvalidReason.VERSION_CAP, detail)

    def _seed(self, model: str, start: int, width: int) -> Collection[str]:
        try:
            return self._stored(model, start, width)
        except StoreError as exc:
            log.warning("cannot read the versions stored for a window, counting none: %s", exc)
            return ()

    def _current_protected(self) -> Mapping[str, Collection[str]]:
        now = self._clock.monotonic()
        if self._read_at is not None and now - self._read_at < self._refresh:
            return self._protected
        self._read_at = now
        try:
            self._protected = self._read_protected()
        except StoreError as exc:
            log.warning("cannot read the registry's live versions, keeping the last: %s", exc)
        return self._protected
