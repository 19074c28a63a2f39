"""The version gate: which model versions each window takes, and what it refuses."""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from consumers.errors import InvalidReason
from consumers.events import DecodedBatch
from consumers.versions import WINDOWS_PER_MODEL, VersionGate, registry_versions, stored_versions
from db.errors import StoreError
from db.models import WindowAggregate
from db.registry import RegistryRepository, Stage
from tests.harness.ingest import DECODER, FakeClock, T

WIDTH = 60  # the harness model's window


def event(version: str, t: float) -> bytes:
    return json.dumps(
        {
            "event_id": f"{version}-{t}",
            "model": "fraud",
            "model_version": version,
            "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
            "features": {"amount": 1.0},
            "prediction": 0.25,
        }
    ).encode()


def screened(gate: VersionGate, *values: bytes) -> DecodedBatch:
    decoded = DECODER.decode_batch(list(values))
    gate.screen(decoded, DECODER.codecs)
    return decoded


def kept(decoded: DecodedBatch) -> list[str]:
    return [e.model_version for e in decoded.events]


def test_refused_events_take_their_place_among_the_invalid_ones() -> None:
    gate = VersionGate(1)
    decoded = screened(gate, event("a", T), b"{bad", event("b", T), event("a", T + 1))
    assert kept(decoded) == ["a", "a"]
    assert decoded.times == [T, T + 1]
    assert [(i, e.kind) for i, e in sorted(decoded.invalid, key=lambda p: p[0])] == [
        (1, InvalidReason.MALFORMED),
        (2, InvalidReason.VERSION_CAP),
    ]


def test_each_window_takes_its_own_first_versions() -> None:
    gate = VersionGate(2)
    assert kept(screened(gate, *(event(v, T) for v in "abcd"))) == ["a", "b"]
    assert kept(screened(gate, event("c", T + 1), event("a", T + 2))) == ["a"]
    assert kept(screened(gate, *(event(v, T + WIDTH) for v in "cdab"))) == ["c", "d"]


class Registry:
    def __init__(self, served: Mapping[str, Collection[str]]) -> None:
        self.served = served
        self.reads = 0
        self.down = False

    def __call__(self) -> Mapping[str, Collection[str]]:
        self.reads += 1
        if self.down:
            raise StoreError("database unreachable")
        return self.served


def test_production_and_canary_are_never_refused_nor_take_a_place() -> None:
    registry = Registry({"fraud": {"prod", "canary"}})
    gate = VersionGate(2, registry)
    flood = [event(f"x{i}", T) for i in range(10)]
    decoded = screened(gate, *flood, event("prod", T), event("canary", T))
    assert kept(decoded) == ["x0", "x1", "prod", "canary"]
    # Served versions alone: nothing is refused and no place is used.
    assert kept(screened(gate, event("prod", T + WIDTH))) == ["prod"]
    assert kept(screened(gate, *(event(v, T + WIDTH) for v in "ab"))) == ["a", "b"]


def test_the_registry_is_read_again_after_refresh_and_kept_while_unreachable() -> None:
    clock = FakeClock(T)
    registry = Registry({"fraud": {"prod"}})
    gate = VersionGate(1, registry, refresh=30.0, clock=clock)
    screened(gate, event("a", T))
    registry.served = {"fraud": {"prod", "new-canary"}}
    assert kept(screened(gate, event("new-canary", T))) == []  # not read again yet
    clock.sleep(30.0)
    assert kept(screened(gate, event("new-canary", T))) == ["new-canary"]
    assert registry.reads == 2
    registry.down = True
    clock.sleep(30.0)
    assert kept(screened(gate, event("prod", T), event("new-canary", T))) == ["prod", "new-canary"]


def test_windows_older_than_every_remembered_one_take_only_recently_live_versions() -> None:
    gate = VersionGate(1)
    for i in range(1, WINDOWS_PER_MODEL + 1):
        screened(gate, event("live", T + i * WIDTH))
    # Window 0 was never seen and is older than all 64 remembered ones.
    decoded = screened(gate, event("live", T), event("stranger", T))
    assert kept(decoded) == ["live"]
    ((_, refusal),) = decoded.invalid
    assert "older than the 64 remembered" in str(refusal)
    # A newer window evicts the oldest remembered one; memory stays bounded.
    screened(gate, event("next", T + (WINDOWS_PER_MODEL + 1) * WIDTH))
    assert len(gate._live["fraud"]) == WINDOWS_PER_MODEL


def test_max_versions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_versions"):
        VersionGate(0)


def test_registry_versions_are_the_production_and_canary_ones(
    sessions: sessionmaker[Session],
) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with sessions.begin() as s:
        reg = RegistryRepository(s)
        for version, stage in [
            ("v1", Stage.ARCHIVED),
            ("v2", Stage.PRODUCTION),
            ("v3", Stage.CANARY),
            ("v4", Stage.CANDIDATE),
            ("v5", Stage.REJECTED),
        ]:
            reg.register("fraud", version, f"file:///{version}", version * 32, stage, now)
    assert registry_versions(sessions)() == {"fraud": {"v2", "v3"}}


def test_the_verdicts_do_not_depend_on_how_the_stream_is_batched() -> None:
    rng = random.Random(7)
    stream = [event(f"v{rng.randrange(12)}", T + rng.randrange(3 * WIDTH)) for _ in range(400)]
    one_by_one = VersionGate(3)
    expected = [kept(screened(one_by_one, value)) for value in stream]
    for _ in range(5):
        gate, got, at = VersionGate(3), [], 0
        while at < len(stream):
            size = rng.randrange(1, 40)
            decoded = screened(gate, *stream[at : at + size])
            refused = {i for i, _ in decoded.invalid}
            versions = iter(kept(decoded))
            got += [
                [] if i in refused else [next(versions)] for i in range(len(stream[at : at + size]))
            ]
            at += size
        assert got == expected


def test_versions_stored_for_a_window_fill_its_places_after_a_restart() -> None:
    stored = {("fraud", T): {"a", "b", "prod"}}
    reads: list[tuple[str, int, int]] = []

    def read(model: str, start: int, width: int) -> set[str]:
        reads.append((model, start, width))
        return stored.get((model, start), set())

    gate = VersionGate(2, Registry({"fraud": {"prod"}}), stored=read)
    assert kept(screened(gate, event("c", T), event("b", T), event("prod", T))) == ["b", "prod"]
    assert kept(screened(gate, event("c", T + WIDTH))) == ["c"]
    assert reads == [("fraud", T, WIDTH), ("fraud", T + WIDTH, WIDTH)]  # once per window


def test_a_store_that_cannot_be_read_seeds_nothing() -> None:
    def down(model: str, start: int, width: int) -> set[str]:
        raise StoreError("database unreachable")

    gate = VersionGate(1, stored=down)
    assert kept(screened(gate, event("a", T), event("b", T))) == ["a"]


def test_stored_versions_are_read_from_the_window_rows(sessions: sessionmaker[Session]) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def row(version: str, start: int, partition: int = 0) -> WindowAggregate:
        return WindowAggregate(
            model="fraud", model_version=version, window_start=datetime.fromtimestamp(start, UTC),
            window_end=datetime.fromtimestamp(start + WIDTH, UTC), partition=partition,
            layout="L", event_count=1, late_count=0, sketch=b"s", updated_at=now,
        )  # fmt: skip

    with sessions.begin() as s:
        s.add_all([row("a", T), row("a", T, 1), row("b", T), row("c", T + WIDTH)])
    read = stored_versions(sessions)
    assert read("fraud", T, WIDTH) == {"a", "b"}
    assert read("fraud", T + WIDTH, WIDTH) == {"c"}
    assert read("churn", T, WIDTH) == set()
