"""deploy/kubernetes/overlays/*/role.yaml: each router's Role grants exactly the calls the router
makes, on its one object by name, and validates against the official schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from kubernetes import client

from retrain.errors import RouterError
from retrain.rollout.base import Router
from retrain.rollout.gateway_api import GatewayApiRouter, GatewayApiSettings
from retrain.rollout.istio import Destination, IstioRouter, IstioSettings
from retrain.rollout.kserve import KServeRouter, KServeSettings
from tests.harness.k8s.cluster import api_client
from tests.unit.retrain.rollout.custom_support import (
    CANARY,
    HOST,
    INFERENCE_SERVICE,
    NAME,
    NAMESPACE,
    ROUTE,
    STABLE,
    VIRTUAL_SERVICE,
    emulator,
    role,
    seed,
)

KUBERNETES_VERSION = "1.33"


def gateway(api: client.ApiClient, name: str) -> Router:
    return GatewayApiRouter(
        api, GatewayApiSettings(NAMESPACE, name, "fraud-stable", "fraud-canary", rule="predict")
    )


def istio(api: client.ApiClient, name: str) -> Router:
    settings = IstioSettings(
        NAMESPACE, name, Destination(HOST, "stable"), Destination(HOST, "canary"), "primary"
    )
    return IstioRouter(api, settings)


def kserve(api: client.ApiClient, name: str) -> Router:
    return KServeRouter(api, KServeSettings(NAMESPACE, name))


Make = Callable[[client.ApiClient, str], Router]
CASES: dict[str, tuple[str, str, str, dict[str, Any], Make]] = {
    "gateway-api": ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", ROUTE, gateway),
    "istio": ("networking.istio.io/v1", "VirtualService", "virtualservices", VIRTUAL_SERVICE,
              istio),
    "kserve": ("serving.kserve.io/v1beta1", "InferenceService", "inferenceservices",
               INFERENCE_SERVICE, kserve),
}  # fmt: skip


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_role_validates_against_the_official_schema(name: str) -> None:
    kubernetes_validate.validate(role(name), KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_role_grants_exactly_what_the_router_calls(name: str) -> None:
    api_version, kind, plural, obj, make = CASES[name]
    granting = role(name)
    with emulator(granting) as emu:
        seed(emu, api_version, kind, plural, obj)
        router = make(api_client(emu.url), NAME)
        router.set_weights(STABLE, CANARY, 25)
        router.get_weights()
        router.rollback(STABLE)
        for _ in range(3):  # kserve rolls back in steps
            router.rollback(STABLE)
        router.set_weights(STABLE, CANARY, 50)
        assert router.promote(CANARY).done
        assert [entry for entry in emu.log if entry[3] == 403] == []
        assert emu.calls == granted(granting["rules"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_role_grants_the_named_object_only(name: str) -> None:
    api_version, kind, plural, obj, make = CASES[name]
    with emulator(role(name)) as emu:
        other = {**obj, "metadata": {**obj["metadata"], "name": "payments"}}
        seed(emu, api_version, kind, plural, other)
        with pytest.raises(RouterError) as caught:
            make(api_client(emu.url), "payments").get_weights()
        assert not caught.value.retriable and "403" in str(caught.value)
