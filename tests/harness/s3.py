"""A local S3-compatible server for the tests: moto's server (``moto_server``) in a process.

moto answers a ``PutObject`` with ``If-None-Match: *`` on an existing key with 412
Precondition Failed, as S3 does: the conditional put that deltalake's commits on
S3 rely on, so the archive's race tests run against the real protocol.

The credentials are made up for each server; moto accepts any. They are handed to
the code under test the way a deployment hands them over: through the standard
``AWS_*`` environment variables, never through a config file.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_START_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]


def server_python() -> Path | None:
    """The interpreter of ``make s3-server``'s virtualenv, if it is installed."""
    python = ROOT / ".s3-venv" / "bin" / "python"
    return python if (ROOT / ".s3-venv" / ".installed").exists() else None


@dataclass(frozen=True)
class LocalS3:
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The variables that point botocore, s3fs and deltalake at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            # deltalake (object_store) refuses plain http unless told.
            "AWS_ALLOW_HTTP": "true",
        }

    def create_bucket(self, name: str) -> None:
        """A new bucket; a bucket is one PUT to moto, unsigned requests are accepted."""
        response = httpx.put(f"{self.endpoint}/{name}")
        response.raise_for_status()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_s3(python: Path, log_dir: Path) -> Iterator[LocalS3]:
    """Run moto's server (with ``python``, see :func:`server_python`) on a free loopback
    port until the block ends."""
    port = _free_port()
    log = (log_dir / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(python), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LocalS3(
        endpoint=f"http://127.0.0.1:{port}",
        access_key=f"AKIA{secrets.token_hex(8).upper()}",
        secret_key=secrets.token_urlsafe(30),
    )
    try:
        _wait_ready(server, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(server: LocalS3, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode} before answering")
        try:
            httpx.get(f"{server.endpoint}/moto-api/", timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto_server did not answer within {_START_TIMEOUT} s"
                ) from None
            time.sleep(0.1)
