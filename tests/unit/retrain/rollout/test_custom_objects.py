"""The custom-object boundary of the mesh and KServe routers, and the emulator's custom
objects it runs against, through the official client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from retrain.errors import RouterError
from retrain.rollout.custom_objects import CustomObject, ObjectRef, connect
from tests.harness.k8s.cluster import api_client, write_kubeconfig
from tests.harness.k8s.server import Emulator, Fault
from tests.unit.retrain.rollout.custom_support import (
    NAME,
    NAMESPACE,
    VIRTUAL_SERVICE,
    emulator,
    seed,
)

GROUP, PLURAL = "networking.istio.io", "virtualservices"
REF = ObjectRef(GROUP, "v1", PLURAL, "VirtualService", NAMESPACE, NAME)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulator() as emu:
        seed(emu, f"{GROUP}/v1", "VirtualService", PLURAL, VIRTUAL_SERVICE)
        yield emu


def api(emu: Emulator) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client(emu.url))


def test_a_merge_patch_deletes_on_null_and_replaces_lists(emu: Emulator) -> None:
    patch = {"spec": {"hosts": ["b"], "http": None, "gateways": ["mesh"]}}
    obj: Any = api(emu).patch_namespaced_custom_object(GROUP, "v1", NAMESPACE, PLURAL, NAME, patch)
    assert obj["spec"] == {"hosts": ["b"], "gateways": ["mesh"]}
    assert obj["metadata"]["generation"] == 2


def test_every_served_version_reads_the_same_object(emu: Emulator) -> None:
    obj: Any = api(emu).get_namespaced_custom_object(GROUP, "v1beta1", NAMESPACE, PLURAL, NAME)
    assert obj["apiVersion"] == f"{GROUP}/v1beta1" and obj["spec"] == VIRTUAL_SERVICE["spec"]


def test_a_put_of_a_stale_version_is_a_conflict(emu: Emulator) -> None:
    objects = api(emu)
    read: Any = objects.get_namespaced_custom_object(GROUP, "v1", NAMESPACE, PLURAL, NAME)
    objects.patch_namespaced_custom_object(GROUP, "v1", NAMESPACE, PLURAL, NAME, {"spec": {}})
    with pytest.raises(ApiException) as caught:
        objects.replace_namespaced_custom_object(GROUP, "v1", NAMESPACE, PLURAL, NAME, read)
    assert caught.value.status == 409


def test_status_is_written_through_its_subresource_only(emu: Emulator) -> None:
    objects = api(emu)
    objects.patch_namespaced_custom_object(
        GROUP, "v1", NAMESPACE, PLURAL, NAME, {"status": {"x": 1}, "spec": {"hosts": ["c"]}}
    )
    objects.patch_namespaced_custom_object_status(
        GROUP, "v1", NAMESPACE, PLURAL, NAME, {"status": {"y": 2}, "spec": {"hosts": ["d"]}}
    )
    obj: Any = objects.get_namespaced_custom_object(GROUP, "v1", NAMESPACE, PLURAL, NAME)
    assert (obj["spec"]["hosts"], obj["status"]) == (["c"], {"y": 2})


def test_an_uninstalled_resource_is_not_found(emu: Emulator) -> None:
    with pytest.raises(ApiException) as caught:
        api(emu).get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", NAMESPACE, "rollouts", NAME
        )
    assert caught.value.status == 404


def test_a_hung_request_times_out_retriable(emu: Emulator) -> None:
    emu.inject(Fault("get", PLURAL, 0, count=4, delay=1.0))  # urllib3 retries a GET 3 times
    with pytest.raises(RouterError) as caught:
        CustomObject(api_client(emu.url), REF, request_timeout=0.2).get()
    assert caught.value.retriable


@pytest.mark.parametrize(("status", "retriable"), [(429, True), (500, True), (422, False)])
def test_errors_are_classed(emu: Emulator, status: int, retriable: bool) -> None:
    emu.inject(Fault("patch", PLURAL, status))
    obj = CustomObject(api_client(emu.url), REF, request_timeout=5.0)
    with pytest.raises(RouterError) as caught:
        obj.patch(obj.get(), {"spec": {}})
    assert caught.value.retriable is retriable
    assert f"patch {PLURAL}.{GROUP}/v1 {NAMESPACE}/{NAME}: {status}" in str(caught.value)


@dataclass(frozen=True)
class _Cluster:
    kubeconfig: str | None
    context: str | None = None
    in_cluster: bool = False


def test_connect_loads_a_kubeconfig(emu: Emulator, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", emu.url)
    api_client_ = connect(_Cluster(str(kubeconfig)), "rollout.istio")
    assert CustomObject(api_client_, REF, request_timeout=5.0).get()["metadata"]["name"] == NAME


def test_connect_names_the_setting_it_cannot_load(tmp_path: Path) -> None:
    with pytest.raises(RouterError, match=r"^rollout\.istio\.kubeconfig: ") as caught:
        connect(_Cluster(str(tmp_path / "missing")), "rollout.istio")
    assert not caught.value.retriable
