"""Leader election on a Lease, with the official client over real HTTP to the emulator:
one leader of two; a leader cut off from the API server stops leading by its renew
deadline, and the other takes the Lease once it has expired."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from service.leader.kubernetes import LeaseElector
from tests.harness.k8s.cluster import NAMESPACE, api_client, cluster, until
from tests.harness.k8s.server import Emulator
from tests.harness.tcpproxy import TcpProxy

LEASE = "driftwatch-leader"


def elector(url: str, identity: str, lease_duration: float = 3.0) -> LeaseElector:
    return LeaseElector(
        api_client(url),
        name=LEASE,
        namespace=NAMESPACE,
        identity=identity,
        lease_duration=lease_duration,
        renew_deadline=2.0,
        retry_period=1.0,
        request_timeout=1.0,
    )


def holder(emulator: Emulator) -> str | None:
    spec = emulator.store.get("leases", NAMESPACE, LEASE).get("spec", {})
    return spec.get("holderIdentity")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with cluster(tmp_path, kubelet=False) as (emu, _):
        yield emu


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[TcpProxy]:
    address = urlsplit(emulator.url)
    p = TcpProxy(address.hostname or "127.0.0.1", address.port or 80)
    yield p
    p.close()


def test_one_leader_of_two_and_a_cut_off_leader_is_replaced(
    emulator: Emulator, proxy: TcpProxy
) -> None:
    a = elector(f"http://127.0.0.1:{proxy.port}", "replica-a")
    b = elector(emulator.url, "replica-b")
    a.start()
    try:
        until(a.is_leader)
        assert holder(emulator) == "replica-a"
        b.start()
        # b reads the Lease every retry period and finds it held and renewed.
        until(lambda: emulator.count("get", "leases") >= 6)
        assert (a.is_leader(), b.is_leader()) == (True, False)
        assert holder(emulator) == "replica-a"

        proxy.cut()  # a can no longer renew: its process is as good as gone
        until(lambda: not a.is_leader())
        until(b.is_leader)
        assert holder(emulator) == "replica-b"
        assert not a.is_leader()

        proxy.restore()  # a is back: it campaigns again and stays a follower
        renewals = emulator.count("update", "leases", 200)
        until(lambda: emulator.count("update", "leases", 200) >= renewals + 2)
        assert (a.is_leader(), b.is_leader()) == (False, True)
    finally:
        a.stop()
        b.stop()


def test_stop_gives_the_lease_up_so_the_follower_takes_over_before_it_expires(
    emulator: Emulator,
) -> None:
    # Leases that stand for ten minutes: only a release hands one over within the test.
    a = elector(emulator.url, "replica-a", lease_duration=600.0)
    b = elector(emulator.url, "replica-b", lease_duration=600.0)
    a.start()
    try:
        until(a.is_leader)
        b.start()
        until(lambda: emulator.count("get", "leases") >= 4)
        assert not b.is_leader()
        a.stop()
        assert holder(emulator) is None
        until(b.is_leader)
        assert holder(emulator) == "replica-b"
    finally:
        a.stop()
        b.stop()


def test_a_stale_update_is_refused_with_409(emulator: Emulator) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CoordinationV1Api(api_client(emulator.url))
    body = client.V1Lease(metadata={"name": LEASE}, spec=client.V1LeaseSpec(holder_identity="x"))
    created = api.create_namespaced_lease(NAMESPACE, body)
    created.spec.holder_identity = "y"
    api.replace_namespaced_lease(LEASE, NAMESPACE, created)
    created.spec.holder_identity = "z"  # still the first resourceVersion
    with pytest.raises(ApiException) as info:
        api.replace_namespaced_lease(LEASE, NAMESPACE, created)
    assert info.value.status == 409
    assert api.read_namespaced_lease(LEASE, NAMESPACE).spec.holder_identity == "y"


def test_a_leader_that_cannot_reach_the_api_server_still_stops_cleanly(
    emulator: Emulator, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    a = elector(f"http://127.0.0.1:{proxy.port}", "replica-a")
    a.start()
    until(lambda: a.is_leader() and emulator.count("update", "leases", 200) >= 1)
    proxy.cut()
    with caplog.at_level("WARNING", logger="service.leader.kubernetes"):
        a.stop()  # never raises: the Lease is left to expire
    assert not a.is_leader()
    assert holder(emulator) == "replica-a"
    # Either the release failed, or a renewal cut in flight ended the leadership first.
    assert (
        "releasing Lease ml/driftwatch-leader failed" in caplog.text
        or "leadership lost, the API server is unreachable" in caplog.text
    )
