"""The processes behind :class:`service.dev.localkafka.LocalKafka`: their config files,
the JVM command line, loopback ports, ZooKeeper's four-letter probes and stopping a
process group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from service.dev.errors import LocalKafkaError

_STOP_GRACE_SECONDS = 15.0
# One file for every JVM; each names its own log file through -Ddriftwatch.log.file.
_LOG4J = """\
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${driftwatch.log.file}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
"""
_ZOOKEEPER_PROPERTIES = """\
dataDir={workdir}/zookeeper
clientPort={zk_port}
clientPortAddress=127.0.0.1
maxClientCnxns=0
"""
# offsets.topic.num.partitions=4: the first group join creates this topic, 50 is slow.
# group.min.session.timeout.ms=1000: lets tests use short consumer session timeouts.
# group.max.session.timeout.ms: kafka-python sets session = max_poll_interval on 0.9,
#   so clients tuned for a modern broker (max_poll_interval_ms=300000) need its ceiling.
# log.cleaner.dedupe.buffer.size: the 128 MB default would take half of a small heap.
_SERVER_PROPERTIES = """\
broker.id=0
listeners=PLAINTEXT://127.0.0.1:{broker_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port}
log.dirs={workdir}/kafka-logs
zookeeper.connect=127.0.0.1:{zk_port}
num.partitions={partitions}
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
group.min.session.timeout.ms=1000
group.max.session.timeout.ms=1800000
controlled.shutdown.enable=true
log.cleaner.dedupe.buffer.size=16777216
"""


def free_ports(count: int) -> list[int]:
    # All sockets stay bound until every port is chosen so the kernel cannot repeat one.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not readable)"


def zookeeper_command(port: int, command: bytes) -> bytes:
    """Send a ZooKeeper four-letter command; b"" while the server is not answering."""
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(command)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return b""
    return b"".join(chunks)


def broker_registered(zk_port: int) -> bool:
    # "dump" lists the ephemeral nodes of every live session, the broker's included.
    return b"/brokers/ids/0" in zookeeper_command(zk_port, b"dump")


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, _STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
            return


def write_configs(workdir: Path, zk_port: int, broker_port: int, partitions: int) -> None:
    """log4j, ZooKeeper and broker properties for a broker on ``broker_port``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "log4j.properties").write_text(_LOG4J)
    fields = {"workdir": workdir, "zk_port": zk_port, "broker_port": broker_port}
    (workdir / "zookeeper.properties").write_text(_ZOOKEEPER_PROPERTIES.format(**fields))
    server = _SERVER_PROPERTIES.format(partitions=partitions, **fields)
    (workdir / "server.properties").write_text(server)


def jvm_command(workdir: Path, classpath: str, name: str, heap: str) -> list[str]:
    """``java`` with the options every JVM here shares; ``name`` names its log file."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).exists():
        raise LocalKafkaError("java is not on PATH and JAVA_HOME is not set")
    # No GC-logging or CMS flags: Java 17 refuses the ones Kafka 0.9's scripts pass.
    return [
        java,
        f"-Xmx{heap}",
        "-Xms64m",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{workdir / 'log4j.properties'}",
        f"-Ddriftwatch.log.file={workdir / f'{name}.log'}",
        f"-Dkafka.logs.dir={workdir}",
        "-cp",
        classpath,
    ]
