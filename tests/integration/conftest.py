"""Shared pieces of the integration tests: topics, configs, producing, services."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.kafka import TestKafka
from tests.harness.scenario import ServiceProcess, create_topics, send_synthetic, write_config

_names = itertools.count()


@pytest.fixture
def topic(kafka: TestKafka) -> str:
    name = f"predictions-{os.getpid()}-{next(_names)}"
    create_topics(kafka, name)
    return name


@pytest.fixture
def make_config(kafka: TestKafka, tmp_path: Path, topic: str) -> Callable[..., Path]:
    def _make(database_url: str, **kw: Any) -> Path:
        return write_config(
            tmp_path / f"config-{next(_names)}.yaml",
            bootstrap_servers=kafka.bootstrap_servers,
            api_version=kafka.api_version,
            database_url=database_url,
            topic=topic,
            group_id=f"group-{topic}",
            **kw,
        )

    return _make


@pytest.fixture
def send(kafka: TestKafka) -> Callable[..., Counter[tuple[str, str, int]]]:
    """Produce ``count`` synthetic events per model of a config; return per-window counts."""

    def _send(
        config: Path, count: int, *, seed: int = 1, days_ago: float = 3.0
    ) -> Counter[tuple[str, str, int]]:
        return send_synthetic(kafka, config, count, seed=seed, days_ago=days_ago)

    return _send


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[[Path], ServiceProcess]]:
    started: list[ServiceProcess] = []

    def _start(config: Path) -> ServiceProcess:
        svc = ServiceProcess(config, tmp_path / f"service-{len(started)}.log")
        svc.start()
        started.append(svc)
        return svc

    yield _start
    for svc in started:
        if svc.alive():
            svc.kill()
