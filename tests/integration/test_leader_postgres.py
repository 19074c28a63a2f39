"""Leader election on the real PostgreSQL: one advisory lock, one leader; a leader whose
session is killed loses at its next check and another replica takes over."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from service.leader.postgres import AdvisoryLockElector, lock_engine, lock_key
from tests.harness.k8s.cluster import until
from tests.harness.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres

KEY = lock_key("leader-test")


def holder_pids(admin: Engine) -> list[int]:
    with admin.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid::bigint = :high AND objid::bigint = :low"
            ),
            {"high": (KEY >> 32) & 0xFFFFFFFF, "low": KEY & 0xFFFFFFFF},
        )
        return [int(r[0]) for r in rows]


def campaign(elector: AdvisoryLockElector) -> bool:
    """One campaign step made by the test itself (that elector has no thread)."""
    elector.step()
    return elector.is_leader()


@pytest.fixture
def admin(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def electors(pg_url: str) -> Iterator[list[AdvisoryLockElector]]:
    made = [
        AdvisoryLockElector(lock_engine(pg_url, 2.0), "leader-test", 1.0, 3.0) for _ in range(2)
    ]
    yield made
    for e in made:
        e.stop()


def test_two_electors_have_one_leader_and_a_killed_session_hands_over(
    electors: list[AdvisoryLockElector], admin: Engine
) -> None:
    a, b = electors
    a.start()
    until(a.is_leader)
    assert not campaign(b)
    (pid,) = holder_pids(admin)

    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    until(lambda: campaign(b))
    until(lambda: not a.is_leader())  # its next check failed: the leadership ended
    (new_pid,) = holder_pids(admin)
    assert new_pid != pid
    assert not a.is_leader() and b.is_leader()  # a campaigns on, a follower now


def test_stop_releases_the_lock_so_a_follower_takes_over_at_once(
    electors: list[AdvisoryLockElector], admin: Engine
) -> None:
    a, b = electors
    a.start()
    until(a.is_leader)
    assert not campaign(b)
    a.stop()
    assert not a.is_leader()
    assert campaign(b)  # no kill, no expiry: the lock was given back
    assert len(holder_pids(admin)) == 1


def test_a_check_that_cannot_reach_the_database_ends_the_leadership(pg_url: str) -> None:
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    elector = AdvisoryLockElector(lock_engine(via_proxy, 2.0), "leader-cut", 1.0, 3.0)
    try:
        assert campaign(elector)
        proxy.cut()
        assert not campaign(elector)
        proxy.restore()
        until(lambda: campaign(elector))  # once the server has ended the old session
    finally:
        elector.stop()
        proxy.close()


def test_leadership_lapses_when_no_check_succeeded_within_the_renew_deadline(
    pg_url: str,
) -> None:
    now = [100.0]
    elector = AdvisoryLockElector(
        lock_engine(pg_url, 2.0), "leader-clock", 1.0, 3.0, clock=lambda: now[0]
    )
    try:
        assert campaign(elector)
        now[0] += 2.9
        assert elector.is_leader()
        now[0] += 0.2  # a check hung past the deadline: no longer leader, whatever it holds
        assert not elector.is_leader()
        assert campaign(elector)
    finally:
        elector.stop()
