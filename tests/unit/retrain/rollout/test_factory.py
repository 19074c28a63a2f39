"""``make_router``: each name builds its backend; an unknown name or a missing
section is a fatal error naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from retrain.errors import RouterError
from retrain.rollout import ROUTERS, FakeRouter, FileRouter, ManualRouter, make_router
from retrain.rollout.gateway_api import GatewayApiRouter, GatewayApiSettings
from retrain.rollout.istio import Destination, IstioRouter, IstioSettings
from retrain.rollout.kserve import KServeRouter, KServeSettings
from retrain.rollout.replicas import ReplicasRouter
from retrain.rollout.settings import FileSettings, ReplicasSettings
from tests.harness.k8s.cluster import NAMESPACE, write_kubeconfig


@dataclass(frozen=True)
class Settings:
    file: FileSettings | None = None
    replicas: ReplicasSettings | None = None
    gateway_api: GatewayApiSettings | None = None
    istio: IstioSettings | None = None
    kserve: KServeSettings | None = None


def test_file_manual_none_and_fake(tmp_path: Path) -> None:
    settings = Settings(file=FileSettings(str(tmp_path / "split.json")))
    file_router = make_router("file", settings, model="fraud")
    assert isinstance(file_router, FileRouter)
    assert (file_router.path, file_router.model) == (tmp_path / "split.json", "fraud")
    for name in ("manual", "none"):
        manual = make_router(name, Settings(), model="fraud")
        assert isinstance(manual, ManualRouter) and manual.model == "fraud"
    assert isinstance(make_router("fake", Settings(), model="fraud"), FakeRouter)


def test_replicas_connects_with_its_section(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    section = ReplicasSettings(NAMESPACE, "fraud", "fraud-canary", kubeconfig=str(kubeconfig))
    router = make_router("replicas", Settings(replicas=section), model="fraud")
    assert isinstance(router, ReplicasRouter) and router.settings is section


def test_the_object_routers_connect_with_their_sections(tmp_path: Path) -> None:
    kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1"))
    gateway = GatewayApiSettings(NAMESPACE, "fraud", "stable", "canary", kubeconfig=kubeconfig)
    destination = Destination("fraud.ml.svc.cluster.local")
    istio = IstioSettings(NAMESPACE, "fraud", destination, destination, kubeconfig=kubeconfig)
    kserve = KServeSettings(NAMESPACE, "fraud", kubeconfig=kubeconfig)
    settings = Settings(gateway_api=gateway, istio=istio, kserve=kserve)
    assert isinstance(make_router("gateway-api", settings, model="fraud"), GatewayApiRouter)
    assert isinstance(make_router("istio", settings, model="fraud"), IstioRouter)
    assert isinstance(make_router("kserve", settings, model="fraud"), KServeRouter)
    broken = Settings(kserve=KServeSettings(NAMESPACE, "fraud", kubeconfig=str(tmp_path / "no")))
    with pytest.raises(RouterError, match=r"^rollout\.kserve\.kubeconfig: ") as info:
        make_router("kserve", broken, model="fraud")
    assert not info.value.retriable


def test_a_bad_kubeconfig_names_the_key(tmp_path: Path) -> None:
    section = ReplicasSettings(NAMESPACE, "a", "b", kubeconfig=str(tmp_path / "missing"))
    with pytest.raises(RouterError, match=r"^rollout\.replicas\.kubeconfig: ") as info:
        make_router("replicas", Settings(replicas=section), model="fraud")
    assert not info.value.retriable


@pytest.mark.parametrize(
    ("name", "section"),
    [("file", "file"), ("replicas", "replicas"), ("gateway-api", "gateway_api"),
     ("istio", "istio"), ("kserve", "kserve")],
)  # fmt: skip
def test_a_missing_section_names_the_key(name: str, section: str) -> None:
    with pytest.raises(RouterError) as info:
        make_router(name, Settings(), model="fraud")
    assert str(info.value) == f"rollout.{section}: required when rollout.router is {name}"
    assert not info.value.retriable


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(RouterError) as info:
        make_router("linkerd", Settings(), model="fraud")
    assert str(info.value) == (
        "rollout.router: unknown router 'linkerd'; expected one of "
        "file, replicas, gateway-api, istio, kserve, manual, none, fake"
    )
    assert not info.value.retriable
    assert "linkerd" not in ROUTERS


@pytest.mark.parametrize(
    ("key", "kwargs", "expected"),
    [
        ("total_replicas", {"total_replicas": 1}, "expected at least 2"),
        ("canary_deployment", {"canary_deployment": "fraud"}, "must differ"),
        ("namespace", {"namespace": ""}, "required"),
        ("request_timeout", {"request_timeout": 0.0}, "positive"),
    ],
)
def test_replicas_settings_name_the_wrong_key(
    key: str, kwargs: dict[str, object], expected: str
) -> None:
    values: dict[str, object] = {"namespace": NAMESPACE, "stable_deployment": "fraud",
                                 "canary_deployment": "fraud-canary", **kwargs}  # fmt: skip
    with pytest.raises(RouterError, match=rf"^rollout\.replicas\.{key}: .*{expected}"):
        ReplicasSettings(**values)  # type: ignore[arg-type]
