"""deploy/Dockerfile, read with BuildKit's own parser (no Docker engine runs here):
a pinned slim Python 3.11 base, dependencies from constraints.txt in a builder stage,
final stages without build tools or sources, a non-root user, every write under /tmp
or the data directory, and the service and trainer targets the manifests run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dockerfile  # type: ignore[import-not-found]
import pytest

from tests.unit.deploy.support import BASE, ROOT, load_yaml

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# What compiles or fetches packages: none of it may reach the images that run.
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|gcc|g\+\+|make|build-essential|pip install|curl|wget)\b")


@dataclass
class Stage:
    name: str
    base: str
    commands: list[dockerfile.Command] = field(default_factory=list)

    def all(self, cmd: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == cmd]

    def env(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for command in self.all("ENV"):
            pairs = command.value
            found.update(zip(pairs[::2], pairs[1::2], strict=True))
        return found


def stages() -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            image, as_, name = command.value
            assert as_.upper() == "AS", command.original
            current = found[name] = Stage(name, image)
        else:
            assert current is not None, f"{command.original}: before any FROM"
            current.commands.append(command)
    return found


def lineage(name: str) -> list[Stage]:
    """The stage and those it is built on, itself first."""
    all_stages = stages()
    chain = [all_stages[name]]
    while chain[-1].base in all_stages:
        chain.append(all_stages[chain[-1].base])
    return chain


def test_the_targets_build_on_one_pinned_slim_python_311() -> None:
    found = stages()
    assert set(found) == {"builder", "runtime", "trainer", "demo", "service"}
    external = {s.base for s in found.values() if s.base not in found}
    assert len(external) == 1, external
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", external.pop())
    # `docker build` without --target builds the last stage: the service.
    assert list(found)[-1] == "service"


def test_dependencies_come_from_the_constraints_in_the_builder() -> None:
    builder = stages()["builder"]
    copied = [c.value for c in builder.all("COPY")]
    assert any("constraints.txt" in value for value in copied)
    runs = " ".join(c.value[0] for c in builder.all("RUN"))
    assert re.search(r"pip install (--\S+ )*-c constraints\.txt \.", runs)


@pytest.mark.parametrize("target", ["service", "trainer"])
def test_the_final_images_hold_no_build_tools_or_sources(target: str) -> None:
    chain = lineage(target)
    assert [s.name for s in chain][-1] == "runtime"
    for stage in chain:
        for command in stage.all("RUN"):
            assert not BUILD_TOOLS.search(command.value[0]), command.original
        for command in stage.all("COPY") + stage.all("ADD"):
            # Only the builder's virtualenv: no source tree, no pip cache, no compiler.
            assert command.flags == ("--from=builder",), command.original
            assert command.value == ("/opt/venv", "/opt/venv"), command.original


@pytest.mark.parametrize("target", ["service", "trainer", "demo"])
def test_the_images_run_as_a_non_root_user(target: str) -> None:
    users = [c.value[0] for s in reversed(lineage(target)) for c in s.all("USER")]
    assert users, f"{target}: no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    # Kubernetes' runAsNonRoot can only verify a numeric user; the manifests run the same.
    for spec in (
        load_yaml(BASE / "deployment.yaml")["spec"]["template"]["spec"],
        load_yaml(BASE / "trainer-job.yaml")["spec"]["template"]["spec"],
    ):
        assert spec["securityContext"]["runAsUser"] == int(uid)
        assert spec["securityContext"]["runAsGroup"] == int(gid)


def test_every_write_goes_to_tmp_or_the_data_directory() -> None:
    runtime = stages()["runtime"]
    env = runtime.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # no __pycache__ beside the code
    for name in ("HOME", "TMPDIR", "XDG_CACHE_HOME", "NUMBA_CACHE_DIR", "MPLCONFIGDIR"):
        assert env[name] == "/tmp" or env[name].startswith("/tmp/"), name
    # Relative paths of the configuration land in the data directory, which the
    # Deployment, the trainer Job and docker-compose.yml mount.
    (workdir,) = [c.value[0] for c in runtime.all("WORKDIR")]
    mounts = [
        m["mountPath"]
        for m in load_yaml(BASE / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0][
            "volumeMounts"
        ]
    ]
    assert workdir in mounts and "/tmp" in mounts
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]["driftwatch"]
    assert compose["read_only"] is True and compose["tmpfs"] == ["/tmp"]
    assert any(v.endswith(f":{workdir}") for v in compose["volumes"])


def test_the_targets_run_what_the_manifests_expect() -> None:
    found = stages()
    service, trainer = found["service"], found["trainer"]
    assert [c.value for c in service.all("ENTRYPOINT")] == [("driftwatch",)]
    assert [c.value for c in service.all("CMD")] == [("run",)]
    config = load_yaml(BASE / "config.yaml")
    (exposed,) = [c.value for c in service.all("EXPOSE")]
    assert {int(p) for p in exposed} == {config["api"]["port"], config["metrics"]["port"]}
    (entrypoint,) = [c.value for c in trainer.all("ENTRYPOINT")]
    job = load_yaml(BASE / "trainer-job.yaml")
    assert tuple(job["spec"]["template"]["spec"]["containers"][0]["command"]) == entrypoint


def test_the_demo_image_adds_the_development_tools_only() -> None:
    demo = stages()["demo"]
    assert demo.base == "runtime"
    (copy,) = demo.all("COPY")
    source, destination = copy.value
    assert source == "service/dev"
    assert destination == "/opt/venv/lib/python3.11/site-packages/service/dev"
    assert not any(BUILD_TOOLS.search(c.value[0]) for c in demo.all("RUN"))


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    patterns = {line for line in ignored.splitlines() if line and not line.startswith("#")}
    assert {".git", ".venv", "demo"} <= patterns
