"""The ingestion path imports no library it does not use.

pandas, scikit-learn, SciPy and Evidently are tens of megabytes and hundreds of
thousands of objects; a process that only ingests must not carry them because
a module on its path imports one for an unrelated feature. Each check runs in
a fresh interpreter, since this test process has imported them all already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pandas", "sklearn", "scipy", "evidently")
# What builds and runs the ingestion loop: the loop and its parts, the archive
# writer, the database session and migrations, configuration, the Kafka clients,
# the metrics and the process settings.
INGEST_MODULES = (
    "consumers.loop",
    "consumers.archive",
    "consumers.checkpoint",
    "consumers.dlq",
    "consumers.events",
    "db.archive",
    "db.migrate",
    "db.session",
    "service.config",
    "service.kafka_clients",
    "service.metrics",
    "service.process",
)


def imported_by(modules: tuple[str, ...]) -> list[str]:
    """The top-level packages of HEAVY that importing ``modules`` loads."""
    code = (
        f"import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted({{n.split('.')[0] for n in sys.modules}} & {set(HEAVY)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_the_ingest_modules_import_no_heavy_library() -> None:
    assert imported_by(INGEST_MODULES) == []


@pytest.mark.parametrize("module", ["drift.evaluate", "retrain.trainer.model"])
def test_the_check_sees_a_heavy_import(module: str) -> None:
    # Window evaluation needs SciPy and the trainer scikit-learn: the subprocess check
    # must see them, or the test above would pass on anything.
    assert imported_by((module,)) != []
