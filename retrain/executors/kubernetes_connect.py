"""Connecting the ``kubernetes`` executor: client configuration (in-cluster or a
kubeconfig) and the Job template (a file or a ConfigMap key), read once at start-up."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import urllib3
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from retrain import kubeclient
from retrain.errors import ExecutorError, yaml_problem
from retrain.executors.kubernetes import KubernetesExecutor, KubernetesSettings, translate


class KubernetesConfig(kubeclient.ClusterConfig, Protocol):
    """The ``retrain.kubernetes`` settings the factory reads."""

    @property
    def namespace(self) -> str: ...
    @property
    def template(self) -> str | None: ...
    @property
    def template_configmap(self) -> str | None: ...
    @property
    def result_path(self) -> str | None: ...
    @property
    def ttl_seconds(self) -> int: ...
    @property
    def resync(self) -> float: ...
    @property
    def request_timeout(self) -> float: ...


def connect(
    cfg: KubernetesConfig, *, on_watch_error: Callable[[str], None] | None = None
) -> KubernetesExecutor:
    """The executor for the configured cluster: in-cluster config or a kubeconfig, and the
    Job template from a file or a ConfigMap key (read once, at start-up)."""
    api_client = kubeclient.api_client(
        cfg, "retrain.kubernetes", lambda message: ExecutorError(message, retriable=False)
    )
    settings = KubernetesSettings(
        namespace=cfg.namespace,
        template=_template(cfg, api_client),
        result_path=cfg.result_path,
        ttl_seconds=cfg.ttl_seconds,
        resync_seconds=cfg.resync,
        request_timeout=cfg.request_timeout,
    )
    return KubernetesExecutor(api_client, settings, on_watch_error=on_watch_error)


def _template(cfg: KubernetesConfig, api_client: client.ApiClient) -> Mapping[str, Any]:
    if cfg.template is not None:
        key, source = "template", cfg.template
        try:
            with open(cfg.template, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ExecutorError(f"retrain.kubernetes.template: {exc}", retriable=False) from exc
    else:
        key, source = "template_configmap", str(cfg.template_configmap)
        name, _, item = source.partition("/")
        core = client.CoreV1Api(api_client)
        try:
            found = core.read_namespaced_config_map(
                name, cfg.namespace, _request_timeout=cfg.request_timeout
            )
            data = found.data or {}
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, f"retrain.kubernetes.template_configmap: get {source}") from exc
        if item not in data:
            raise _bad_key(key, f"ConfigMap {name} has no key {item!r}")
        text = data[item]
    try:
        template = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _bad_key(key, f"{source} is not YAML: {yaml_problem(exc)}") from None
    if not isinstance(template, dict):
        raise _bad_key(key, f"{source} does not hold a Job mapping")
    return template


def _bad_key(key: str, what: str) -> ExecutorError:
    return ExecutorError(f"retrain.kubernetes.{key}: {what}", retriable=False)
