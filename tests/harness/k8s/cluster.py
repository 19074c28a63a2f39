"""A running emulator + kubelet, a kubeconfig pointing at it, and helpers for tests."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.harness.k8s.kubelet import Kubelet
from tests.harness.k8s.server import Emulator

NAMESPACE = "ml"


def job_template(command: list[str], **container: Any) -> dict[str, Any]:
    """A user's Job template: image, command, GPU limits, scheduling."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": {"team": "fraud"}},
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": "trainer",
                    "nodeSelector": {"accelerator": "a100"},
                    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "registry.example/driftwatch-trainer:1",
                            "command": command,
                            "resources": {
                                "limits": {"nvidia.com/gpu": "1", "memory": "4Gi"},
                                "requests": {"cpu": "2"},
                            },
                            "env": [{"name": "EXTRA", "value": "kept"}],
                            **container,
                        }
                    ],
                }
            }
        },
    }


def python_job(script: str, **container: Any) -> dict[str, Any]:
    return job_template([sys.executable, "-c", script], **container)


def write_kubeconfig(path: Path, url: str, namespace: str = NAMESPACE) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": url}}],
                "users": [{"name": "driftwatch", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": "emu",
                        "context": {"cluster": "emu", "user": "driftwatch", "namespace": namespace},
                    }
                ],
                "current-context": "emu",
            }
        ),
        encoding="utf-8",
    )
    return path


def api_client(url: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = url
    return client.ApiClient(configuration)


@contextmanager
def cluster(
    workdir: Path, role: Mapping[str, Any] | None = None, kubelet: bool = True
) -> Iterator[tuple[Emulator, Kubelet | None]]:
    emulator = Emulator(role).start()
    node = Kubelet(emulator, workdir / "kubelet").start() if kubelet else None
    try:
        yield emulator, node
    finally:
        if node is not None:
            node.stop()
        emulator.stop()


def until(check: Callable[[], Any], limit: float = 30.0, pause: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; a hang guard, not a timing assertion."""
    end = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"still {value!r} after {limit} s")
        time.sleep(pause)
