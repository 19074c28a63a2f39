"""The kserve router against the emulator: an InferenceService's storageUri and
canaryTrafficPercent, with a controller the test drives writing the status."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from retrain.errors import RouterError
from retrain.rollout.base import Split, Target
from retrain.rollout.kserve import (
    CANARY_VERSION,
    GROUP,
    STABLE_URI,
    STABLE_VERSION,
    KServeRouter,
    KServeSettings,
)
from tests.harness.k8s.cluster import api_client
from tests.harness.k8s.server import Emulator, Fault
from tests.unit.retrain.rollout.custom_support import (
    CANARY,
    INFERENCE_SERVICE,
    NAME,
    NAMESPACE,
    PREDICTOR,
    STABLE,
    edit,
    emulator,
    seed,
    stored,
    writes,
)


class Controller:
    """What KServe's controller writes to the status, on demand: a new revision for each
    new storageUri, ready or not; the traffic split the spec asks for."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.created, self.uri, self.rolled_out = 0, "", ""

    def reconcile(self, *, ready: bool = True) -> None:
        def status(obj: dict[str, Any]) -> None:
            predictor = obj["spec"]["predictor"]
            uri = predictor["model"]["storageUri"]
            if uri != self.uri:  # a new template: Knative makes a new revision
                self.created, self.uri = self.created + 1, uri
            latest = f"{NAME}-predictor-{self.created:05}"
            ready_rev = (
                latest if ready else obj["status"]["components"]["predictor"]["latestReadyRevision"]
            )
            percent = predictor.get("canaryTrafficPercent")
            if percent is None:
                traffic = [{"revisionName": ready_rev, "latestRevision": True, "percent": 100}]
                self.rolled_out = ready_rev
            else:
                traffic = [
                    {"tag": "prev", "revisionName": self.rolled_out or ready_rev,
                     "latestRevision": False, "percent": 100 - percent},
                    {"tag": "latest", "revisionName": ready_rev, "latestRevision": True,
                     "percent": percent},
                ]  # fmt: skip
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "components": {"predictor": {
                    "latestCreatedRevision": latest, "latestReadyRevision": ready_rev,
                    "latestRolledoutRevision": self.rolled_out, "traffic": traffic,
                }},
            }  # fmt: skip

        edit(self.emu, GROUP, "inferenceservices", status)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulator() as emu:
        seed(emu, f"{GROUP}/v1beta1", "InferenceService", "inferenceservices", INFERENCE_SERVICE)
        yield emu


def router(emu: Emulator, name: str = NAME) -> KServeRouter:
    return KServeRouter(api_client(emu.url), KServeSettings(NAMESPACE, name))


def isvc(emu: Emulator) -> dict[str, Any]:
    return stored(emu, GROUP, "inferenceservices")


def test_each_step_sets_the_canary_uri_and_percent(emu: Emulator) -> None:
    r = router(emu)
    for percent in (5, 25, 50, 100):
        assert r.set_weights(STABLE, CANARY, percent) == Split(percent, "3", "4")
        obj = isvc(emu)
        predictor = copy.deepcopy(PREDICTOR)
        predictor["model"]["storageUri"] = CANARY.uri
        assert obj["spec"] == {"predictor": {**predictor, "canaryTrafficPercent": percent}}
        assert obj["metadata"]["annotations"] == {
            **INFERENCE_SERVICE["metadata"]["annotations"],
            STABLE_VERSION: "3", STABLE_URI: STABLE.uri, CANARY_VERSION: "4",
        }  # fmt: skip
        assert r.get_weights() == Split(percent, "3", "4")
    assert writes(emu, "inferenceservices") == 4


def test_the_legacy_framework_field_is_detected(emu: Emulator) -> None:
    def legacy(obj: dict[str, Any]) -> None:
        obj["spec"]["predictor"] = {"sklearn": {"storageUri": STABLE.uri}}

    edit(emu, GROUP, "inferenceservices", legacy)
    router(emu).set_weights(STABLE, CANARY, 5)
    predictor = isvc(emu)["spec"]["predictor"]
    assert predictor == {"sklearn": {"storageUri": CANARY.uri}, "canaryTrafficPercent": 5}


def test_weights_are_read_from_a_caught_up_status(emu: Emulator) -> None:
    controller, r = Controller(emu), router(emu)
    controller.reconcile()
    assert r.get_weights() == Split(0, None, None)
    r.set_weights(STABLE, CANARY, 25)
    controller.reconcile(ready=False)  # the canary revision is still starting: all on stable
    assert r.get_weights() == Split(25, "3", "4")
    r.set_weights(STABLE, CANARY, 50)  # a newer generation: the status is stale, the spec says
    assert r.get_weights() == Split(50, "3", "4")


def test_repeating_a_call_writes_nothing(emu: Emulator) -> None:
    r = router(emu)
    for _ in range(3):
        r.set_weights(STABLE, CANARY, 25)
    assert writes(emu, "inferenceservices") == 1


def test_promote_waits_for_the_status_to_show_the_latest_revision_at_100(emu: Emulator) -> None:
    controller, r = Controller(emu), router(emu)
    controller.reconcile()
    r.set_weights(STABLE, CANARY, 50)
    controller.reconcile()
    first = r.promote(CANARY)
    assert not first.done and "not yet reconciled" in first.note
    assert not r.promote(CANARY).done
    assert writes(emu, "inferenceservices") == 2  # the split, then the promotion once
    controller.reconcile()
    assert r.promote(CANARY).done
    obj = isvc(emu)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]
    assert obj["spec"]["predictor"]["model"]["storageUri"] == CANARY.uri
    annotations = obj["metadata"]["annotations"]
    assert (annotations[STABLE_VERSION], annotations[STABLE_URI]) == ("4", CANARY.uri)
    assert CANARY_VERSION not in annotations
    assert r.get_weights() == Split(0, "4", None)
    assert writes(emu, "inferenceservices") == 2


def test_promote_without_a_status_is_done_at_once(emu: Emulator) -> None:
    r = router(emu)
    r.set_weights(STABLE, CANARY, 50)
    progress = r.promote(CANARY)
    assert progress.done and "has no status" in progress.note
    assert "canaryTrafficPercent" not in isvc(emu)["spec"]["predictor"]


def test_rollback_pins_traffic_then_restores_the_stable_uri(emu: Emulator) -> None:
    """Never a moment where the rejected canary takes more than it had: 0% first, the
    stable URI at 0% next, the field removed only once that revision is ready."""
    controller, r = Controller(emu), router(emu)
    controller.reconcile()
    r.set_weights(STABLE, CANARY, 25)
    controller.reconcile()
    assert not r.rollback(STABLE).done
    predictor = isvc(emu)["spec"]["predictor"]
    assert (predictor["canaryTrafficPercent"], predictor["model"]["storageUri"]) == (0, CANARY.uri)
    controller.reconcile()
    assert not r.rollback(STABLE).done
    predictor = isvc(emu)["spec"]["predictor"]
    assert (predictor["canaryTrafficPercent"], predictor["model"]["storageUri"]) == (0, STABLE.uri)
    controller.reconcile(ready=False)
    assert not r.rollback(STABLE).done  # the stable URI's new revision is not ready: wait
    assert "canaryTrafficPercent" in isvc(emu)["spec"]["predictor"]
    assert writes(emu, "inferenceservices") == 3
    controller.reconcile()
    assert not r.rollback(STABLE).done  # field removed; the status has not caught up
    assert "canaryTrafficPercent" not in isvc(emu)["spec"]["predictor"]
    controller.reconcile()
    assert r.rollback(STABLE).done
    assert r.rollback(STABLE).done
    assert writes(emu, "inferenceservices") == 4
    obj = isvc(emu)
    assert obj["spec"] == INFERENCE_SERVICE["spec"]
    assert CANARY_VERSION not in obj["metadata"]["annotations"]
    assert r.get_weights() == Split(0, "3", None)


def test_rollback_without_a_status_ends_in_the_stable_spec(emu: Emulator) -> None:
    r = router(emu)
    r.set_weights(STABLE, CANARY, 25)
    steps = [r.rollback(STABLE).done for _ in range(4)]
    assert steps == [False, False, True, True]
    assert isvc(emu)["spec"] == INFERENCE_SERVICE["spec"]


def test_an_unexpected_uri_is_fatal(emu: Emulator) -> None:
    other = Target("2", "s3://models/fraud/2/model.skops", "c" * 64)
    with pytest.raises(RouterError) as caught:
        router(emu).set_weights(other, CANARY, 5)
    assert not caught.value.retriable and STABLE.uri in str(caught.value)
    assert writes(emu, "inferenceservices") == 0


def test_a_predictor_without_a_storage_uri_is_fatal(emu: Emulator) -> None:
    edit(emu, GROUP, "inferenceservices", lambda o: o["spec"].update(predictor={"containers": []}))
    with pytest.raises(RouterError, match="neither model nor a framework") as caught:
        router(emu).set_weights(STABLE, CANARY, 5)
    assert not caught.value.retriable


def test_a_missing_inference_service_is_fatal_and_named(emu: Emulator) -> None:
    with pytest.raises(RouterError) as caught:
        router(emu, "payments").promote(CANARY)
    assert not caught.value.retriable
    assert f"{NAMESPACE}/payments" in str(caught.value) and "not found" in str(caught.value)


def test_a_server_error_is_retriable(emu: Emulator) -> None:
    emu.inject(Fault("patch", "inferenceservices", 503))
    with pytest.raises(RouterError) as caught:
        router(emu).set_weights(STABLE, CANARY, 5)
    assert caught.value.retriable
    assert isvc(emu)["spec"] == INFERENCE_SERVICE["spec"]
