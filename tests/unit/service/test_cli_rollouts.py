"""``driftwatch rollouts``, run in-process through main() on a real SQLite database, with
the config's ``file`` router built by the service's wiring."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from drift.canary import Check, Outcome
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.span import Span
from service.cli import main
from service.config import load_config
from service.wiring.rollouts import build_rollouts
from tests.unit.retrain.rollout.rollout_support import ScriptedAnalysis
from tests.unit.retrain.support import T0, Clock
from tests.unit.service.test_cli_retrain import write_config

STEPS = [{"weight": w, "min_duration": "1m", "min_events": 1} for w in (20, 50, 100)]
AT_20 = [
    Check("sample_ratio", Outcome.PASS, 0.61, 0.001, 200, 800, "ratio as split", {"chi2": 0.26}),
    Check("accuracy_noninferiority", Outcome.INCONCLUSIVE, None, -0.02, 40, 160, "40 labels"),
]
AT_50 = [
    Check("sample_ratio", Outcome.PASS, 0.9, 0.001, 500, 500, "ratio as split"),
    Check("prediction_divergence", Outcome.PASS, 0.03, 0.1, 500, 500, "psi 0.03 <= 0.1"),
]

LATER = " (the service's next rollout tick applies it)"


def script(span: Span) -> list[Check]:
    return AT_20 if span.canary_percent == 20 else AT_50


@pytest.fixture
def cfg(sqlite_url: str, tmp_path: Path) -> str:
    path = Path(write_config(sqlite_url, tmp_path))
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["models"]["fraud"]["rollout"] = {
        "router": "file",
        "file": {"path": str(tmp_path / "split.json")},
        "steps": STEPS,
    }
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


@pytest.fixture
def sessions(cfg: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(load_config(cfg, env={}).database.url))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def driver(cfg: str, sessions: sessionmaker[Session], clock: Clock) -> RolloutDriver:
    """The service's driver on the config's file router, its analysis scripted."""
    production(sessions)
    return build_rollouts(
        load_config(cfg, env={}), sessions, analyse=ScriptedAnalysis(script), clock=clock
    )


def production(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", "file:///m/v1.skops", "a" * 64, Stage.PRODUCTION, T0
        )


def accepted_run(sessions: sessionmaker[Session], version: str) -> int:
    """An accepted run whose candidate ``version`` awaits its rollout."""
    with transaction(sessions) as s:
        runs = RunRepository(s)
        run = runs.start("fraud", "request", "test", T0, T0, "accepted", T0)
        assert run is not None
        candidate = RegistryRepository(s).register(
            "fraud", version, f"file:///m/{version}.skops", "b" * 64, Stage.CANDIDATE, T0,
            run_id=run.id,
        )  # fmt: skip
        run.candidate_version_id = candidate.id
        runs.enter(run, "accepted", "test", T0, final=True)
        return run.id


def at_last_step(driver: RolloutDriver, sessions: sessionmaker[Session], clock: Clock) -> int:
    """A rollout of ``run-1`` analysed at 20% and 50%, now progressing at 100% (step 3)."""
    rollout_id = driver.start("fraud", accepted_run(sessions, "run-1"))
    driver.tick()
    for _ in range(2):
        clock.advance(minutes=1)
        driver.tick()
    return rollout_id


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["rollouts", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def phase(sessions: sessionmaker[Session], rollout_id: int) -> str:
    with transaction(sessions) as s:
        rollout = RolloutRepository(s).get(rollout_id)
        assert rollout is not None
        return rollout.phase


def stages(sessions: sessionmaker[Session]) -> dict[str, str]:
    with transaction(sessions) as s:
        return {v.version: v.stage for v in RegistryRepository(s).versions("fraud")}


def test_start_rolls_out_an_accepted_runs_candidate_once(
    cfg: str, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    production(sessions)
    run_id = accepted_run(sessions, "run-1")
    start = ("start", "--config", cfg, "--model", "fraud", "--run")
    assert run_cli(capsys, *start, str(run_id)) == (0, "rollout 1 of fraud started: pending\n", "")
    assert stages(sessions) == {"v1": "production", "run-1": "canary"}
    again = "driftwatch: run 1 of fraud has no candidate awaiting a rollout (canary)\n"
    assert run_cli(capsys, *start, str(run_id)) == (1, "", again)
    other = str(accepted_run(sessions, "run-2"))
    busy = "driftwatch: model fraud has an active rollout already\n"
    assert run_cli(capsys, *start, other) == (1, "", busy)
    assert run_cli(capsys, *start, "9") == (1, "", "driftwatch: model fraud has no run 9\n")


def test_show_json_has_the_rollout_its_history_and_its_analyses_by_step(
    cfg: str,
    driver: RolloutDriver,
    sessions: sessionmaker[Session],
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rollout_id = at_last_step(driver, sessions, clock)
    code, out, _ = run_cli(capsys, "show", str(rollout_id), "--config", cfg, "--json")
    assert code == 0
    shown = json.loads(out)
    at = {m: (T0 + timedelta(minutes=m)).isoformat() for m in (0, 1, 2)}
    assert shown.pop("history") == [
        {"phase": "pending", "step": 1, "note": "rolling out run-1 of run 1 against v1",
         "entered_at": at[0]},
        {"phase": "progressing", "step": 1, "note": "step 1 of 3: run-1 at 20%",
         "entered_at": at[0]},
        {"phase": "progressing", "step": 2, "note": "step 2 of 3: run-1 at 50%",
         "entered_at": at[1]},
        {"phase": "progressing", "step": 3, "note": "step 3 of 3: run-1 at 100%",
         "entered_at": at[2]},
    ]  # fmt: skip
    # The weight history: each step's configured weight, from the rows above.
    assert shown.pop("weights") == [
        {"step": 1, "canary_percent": 20, "at": at[0]},
        {"step": 2, "canary_percent": 50, "at": at[1]},
        {"step": 3, "canary_percent": 100, "at": at[2]},
    ]
    first, second = shown.pop("analyses")
    assert (first["step"], second["step"]) == (1, 2)
    span_1 = {"span_start": at[0], "span_end": at[1], "analysed_at": at[1]}
    span_2 = {"span_start": at[1], "span_end": at[2], "analysed_at": at[2]}
    assert first["checks"] == [
        {"check": "sample_ratio", "outcome": "pass", "value": 0.61, "threshold": 0.001,
         "n_canary": 200, "n_stable": 800, "reason": "ratio as split",
         "details": {"chi2": 0.26}, **span_1},
        {"check": "accuracy_noninferiority", "outcome": "inconclusive", "value": None,
         "threshold": -0.02, "n_canary": 40, "n_stable": 160, "reason": "40 labels",
         "details": {}, **span_1},
    ]  # fmt: skip
    assert [(c["check"], c["value"], c["n_canary"]) for c in second["checks"]] == [
        ("sample_ratio", 0.9, 500),
        ("prediction_divergence", 0.03, 500),
    ]
    assert {k: second["checks"][1][k] for k in span_2} == span_2
    assert shown == {
        "id": rollout_id,
        "model": "fraud",
        "run_id": 1,
        "phase": "progressing",
        "active": True,
        "step": 3,
        "canary_percent": 100,
        "stable": "v1",
        "canary": "run-1",
        "reason": None,
        "paused_from": None,
        "failed_checks": 0,
        "created_at": at[0],
        "updated_at": at[2],
        "finished_at": None,
        "step_started_at": at[2],
        "applied_at": at[2],
        # min_duration 1m plus the default step deadline.
        "phase_deadline": shown["phase_deadline"],
        "router_errors": 0,
    }
    assert shown["phase_deadline"] > at[2]


def test_show_text_groups_every_analysis_under_its_step(
    cfg: str,
    driver: RolloutDriver,
    sessions: sessionmaker[Session],
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rollout_id = at_last_step(driver, sessions, clock)
    code, out, _ = run_cli(capsys, "show", str(rollout_id), "--config", cfg)
    assert code == 0
    lines = out.splitlines()
    assert lines[:4] == [
        "rollout 1 of fraud (run 1): progressing",
        "  stable: v1  canary: run-1",
        "  step 3 at 100%, 0 failed check(s)",
        "  created 2026-11-27 12:00:00, updated 2026-11-27 12:02:00",
    ]
    assert lines[4:9] == [
        "  history:",
        "    2026-11-27 12:00:00  pending      step 1  rolling out run-1 of run 1 against v1",
        "    2026-11-27 12:00:00  progressing  step 1  step 1 of 3: run-1 at 20%",
        "    2026-11-27 12:01:00  progressing  step 2  step 2 of 3: run-1 at 50%",
        "    2026-11-27 12:02:00  progressing  step 3  step 3 of 3: run-1 at 100%",
    ]
    step_1, step_2 = lines.index("  step 1 analyses:"), lines.index("  step 2 analyses:")
    assert (step_1, step_2, len(lines)) == (9, 12, 15)
    assert lines[10].split() == [
        "2026-11-27", "12:01:00", "sample_ratio", "pass", "value", "0.61", "threshold", "0.001",
        "canary", "200", "stable", "800", "ratio", "as", "split",
    ]  # fmt: skip
    assert lines[11].split()[2:6] == ["accuracy_noninferiority", "inconclusive", "value", "-"]
    assert [line.split()[2] for line in lines[13:]] == ["sample_ratio", "prediction_divergence"]


def test_list_shows_the_newest_first_with_their_versions_and_filters(
    cfg: str,
    driver: RolloutDriver,
    sessions: sessionmaker[Session],
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = at_last_step(driver, sessions, clock)
    driver.abort(first, "bad canary")
    driver.tick()  # the file serves v1 alone: rolled back
    clock.advance(minutes=1)
    second = driver.start("fraud", accepted_run(sessions, "run-2"))
    driver.tick()
    code, out, _ = run_cli(capsys, "list", "--config", cfg, "--json")
    assert code == 0
    newest, oldest = json.loads(out)
    at = {m: (T0 + timedelta(minutes=m)).isoformat() for m in (0, 2, 3)}
    assert oldest == {
        "id": first,
        "model": "fraud",
        "run_id": 1,
        "phase": "rolled_back",
        "active": False,
        "step": 3,
        "canary_percent": 100,
        "stable": "v1",
        "canary": "run-1",
        "reason": "aborted: bad canary",
        "paused_from": None,
        "failed_checks": 0,
        "created_at": at[0],
        "updated_at": at[2],
        "finished_at": at[2],
    }
    assert {k: newest[k] for k in ("id", "run_id", "phase", "active", "step")} == {
        "id": second, "run_id": 2, "phase": "progressing", "active": True, "step": 1,
    }  # fmt: skip
    assert (newest["canary_percent"], newest["stable"], newest["canary"]) == (20, "v1", "run-2")
    assert (newest["created_at"], newest["finished_at"]) == (at[3], None)

    code, out, _ = run_cli(capsys, "list", "--config", cfg)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:6] == ["id", "model", "phase", "step", "%", "stable"]
    assert [r.split() for r in rows] == [
        ["2", "fraud", "progressing", "1", "20", "v1", "run-2", "2026-11-27", "12:03:00",
         "2026-11-27", "12:03:00"],
        ["1", "fraud", "rolled_back", "3", "100", "v1", "run-1", "2026-11-27", "12:00:00",
         "2026-11-27", "12:02:00"],
    ]  # fmt: skip
    code, out, _ = run_cli(capsys, "list", "--config", cfg, "--json", "--limit", "1")
    assert [r["id"] for r in json.loads(out)] == [second]
    code, out, _ = run_cli(capsys, "list", "--config", cfg, "--model", "other", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_pause_resume_and_abort_move_the_rollout_and_refuse_from_the_wrong_phase(
    cfg: str,
    driver: RolloutDriver,
    sessions: sessionmaker[Session],
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rollout_id = at_last_step(driver, sessions, clock)
    i, c = str(rollout_id), ("--config", cfg)
    assert run_cli(capsys, "pause", i, *c, "--reason", "look at it") == (
        0, "rollout 1: paused\n", ""
    )  # fmt: skip
    with transaction(sessions) as s:
        rollout = RolloutRepository(s).get(rollout_id)
        assert rollout is not None
        assert (rollout.reason, rollout.paused_from) == ("look at it", "progressing")
    assert run_cli(capsys, "pause", i, *c) == (
        1, "", "driftwatch: rollout 1 is paused: nothing to pause\n"
    )  # fmt: skip
    assert run_cli(capsys, "resume", i, *c) == (0, f"rollout 1: progressing{LATER}\n", "")
    assert run_cli(capsys, "resume", i, *c) == (
        1, "", "driftwatch: rollout 1 is progressing, not paused\n"
    )  # fmt: skip
    assert run_cli(capsys, "abort", i, *c, "--reason", "enough") == (
        0, f"rollout 1: rolling_back{LATER}\n", ""
    )  # fmt: skip
    # The CLI records the transition only: the canary keeps its share until the
    # service's next tick asks the router to serve stable alone, and ends the rollout.
    document = json.loads((Path(cfg).parent / "split.json").read_text(encoding="utf-8"))
    assert document["canary"]["version"] == "run-1"
    driver.tick()
    document = json.loads((Path(cfg).parent / "split.json").read_text(encoding="utf-8"))
    assert (document["stable"]["version"], document["canary"]) == ("v1", None)
    assert phase(sessions, rollout_id) == "rolled_back"
    assert stages(sessions) == {"v1": "production", "run-1": "rejected"}
    for action in ("pause", "abort", "promote"):
        code, out, err = run_cli(capsys, action, i, *c)
        assert (code, out) == (1, "")
        assert err.startswith("driftwatch: rollout 1 is rolled_back: ")


def test_promote_from_paused_skips_the_remaining_steps(
    cfg: str,
    driver: RolloutDriver,
    sessions: sessionmaker[Session],
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rollout_id = driver.start("fraud", accepted_run(sessions, "run-1"))
    i, c = str(rollout_id), ("--config", cfg)
    refused = "driftwatch: rollout 1 is pending: only a progressing or paused rollout can be "
    assert run_cli(capsys, "promote", i, *c) == (1, "", refused + "promoted\n")
    driver.tick()  # step 1 at 20%
    assert run_cli(capsys, "pause", i, *c)[0] == 0
    code, out, _ = run_cli(capsys, "promote", i, *c, "--reason", "hotfix")
    assert (code, out) == (0, f"rollout 1: promoting{LATER}\n")
    document = json.loads((Path(cfg).parent / "split.json").read_text(encoding="utf-8"))
    assert document["canary"]["version"] == "run-1"
    with transaction(sessions) as s:
        rollout = RolloutRepository(s).get(rollout_id)
        assert rollout is not None
        assert (rollout.paused_from, rollout.reason, rollout.step) == (None, "hotfix", 0)
        last = RolloutRepository(s).history(rollout_id)[-1]
        assert (last.phase, last.note) == (
            "promoting",
            "promoted by hand at step 1 (20%): hotfix; promoting run-1",
        )
    assert run_cli(capsys, "promote", i, *c)[2].startswith("driftwatch: rollout 1 is promoting")
    driver.tick()
    assert phase(sessions, rollout_id) == "promoted"
    document = json.loads((Path(cfg).parent / "split.json").read_text(encoding="utf-8"))
    assert (document["stable"]["version"], document["canary"]) == ("run-1", None)
    assert stages(sessions) == {"v1": "archived", "run-1": "production"}


@pytest.mark.parametrize(
    "args",
    [("show",), ("show", "--json"), ("pause",), ("resume",), ("promote",), ("abort",)],
)
def test_a_missing_rollout_fails_with_a_message(
    cfg: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    command, *rest = args
    assert run_cli(capsys, command, "42", "--config", cfg, *rest) == (
        1, "", "driftwatch: no rollout 42\n"
    )  # fmt: skip
