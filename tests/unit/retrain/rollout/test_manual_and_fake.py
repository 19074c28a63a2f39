"""The ``manual`` router changes nothing and says what must be done; the ``fake``
router records calls and misbehaves on request."""

from __future__ import annotations

import pytest

from retrain.errors import RouterError
from retrain.rollout.base import Progress, Split, Target
from retrain.rollout.fake import Call, FakeRouter
from retrain.rollout.manual import ManualRouter

V1 = Target("v1", "s3://models/fraud/v1.skops", "a" * 64)
V2 = Target("v2", "s3://models/fraud/v2.skops", "b" * 64)


def test_manual_reports_the_requested_percent_without_versions() -> None:
    router = ManualRouter("fraud")
    assert router.get_weights() == Split(0, None, None)
    assert router.set_weights(V1, V2, 25) == Split(25, None, None)
    assert router.get_weights() == Split(25, None, None)
    assert router.instructions == [
        "manual router: driftwatch changes no traffic; send 25% of fraud's traffic to "
        f"version v2 (s3://models/fraud/v2.skops, sha256 {'b' * 64}) and the rest to "
        f"version v1 (s3://models/fraud/v1.skops, sha256 {'a' * 64})"
    ]


def test_manual_promote_and_rollback_are_done_and_say_what_to_do() -> None:
    router = ManualRouter("fraud")
    router.set_weights(V1, V2, 50)
    promoted = router.promote(V2)
    assert (
        promoted.done
        and "make version v2" in promoted.note
        and "retire the canary" in (promoted.note)
    )
    assert router.get_weights() == Split(0)
    rolled_back = router.rollback(V1)
    assert rolled_back.done and "back to version v1" in rolled_back.note
    assert router.instructions[-2:] == [promoted.note, rolled_back.note]


def test_manual_refuses_a_percent_out_of_range() -> None:
    with pytest.raises(RouterError) as info:
        ManualRouter("fraud").set_weights(V1, V2, -1)
    assert not info.value.retriable


def test_fake_serves_what_it_was_told_and_records_every_call() -> None:
    router = FakeRouter(stable=V1)
    assert router.get_weights() == Split(0, "v1", None)
    assert router.set_weights(V1, V2, 25) == Split(25, "v1", "v2")
    assert router.promote(V2) == Progress(True)
    assert router.get_weights() == Split(0, "v2", None)
    assert router.calls == [
        Call("get_weights", ()),
        Call("set_weights", (V1, V2, 25)),
        Call("promote", (V2,)),
        Call("get_weights", ()),
    ]


def test_fake_stays_not_done_for_the_held_calls_and_keeps_the_split_meanwhile() -> None:
    router = FakeRouter(stable=V1)
    router.set_weights(V1, V2, 50)
    router.hold(2)
    assert [router.rollback(V1).done for _ in range(3)] == [False, False, True]
    assert router.get_weights() == Split(0, "v1", None)
    router.set_weights(V1, V2, 5)
    router.hold(1)
    first = router.promote(V2)
    assert not first.done and first.note
    assert router.get_weights() == Split(5, "v1", "v2")  # unchanged until done
    assert router.promote(V2).done


@pytest.mark.parametrize("retriable", [True, False])
def test_fake_fails_the_next_call_only(retriable: bool) -> None:
    router = FakeRouter(stable=V1)
    router.fail_next(retriable=retriable, message="API down")
    with pytest.raises(RouterError, match="API down") as info:
        router.set_weights(V1, V2, 5)
    assert info.value.retriable is retriable
    assert router.get_weights() == Split(0, "v1", None)  # the failed call changed nothing
    assert router.set_weights(V1, V2, 5) == Split(5, "v1", "v2")
    assert [c.method for c in router.calls] == ["set_weights", "get_weights", "set_weights"]


@pytest.mark.parametrize("percent", [-1, 101, 12.5, True, "25"])
def test_every_router_refuses_what_is_not_a_whole_percent(percent: object) -> None:
    for router in (ManualRouter("fraud"), FakeRouter(stable=V1)):
        with pytest.raises(RouterError, match="canary_percent: expected an integer") as info:
            router.set_weights(V1, V2, percent)  # type: ignore[arg-type]
        assert not info.value.retriable
        assert router.get_weights() == Split(0, "v1" if isinstance(router, FakeRouter) else None)
