"""The alert rules and the Grafana dashboard query metrics and labels the service
exports (service/metrics.py), and the PrometheusRule has the shape the operator reads."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.unit.deploy.support import BASE, load_yaml, promql_problems, walk_dashboard

DASHBOARD = BASE / "grafana" / "driftwatch.json"
# The conditions the rules must cover, by the metric each one watches.
WATCHED = {
    "drift": "driftwatch_dataset_drift",
    "stalled consumer": "driftwatch_consumer_lag_messages",
    "outbox backlog": "driftwatch_alert_outbox_deliveries",
    "rollout paused": "driftwatch_rollout_phase",
    "dead leader": "driftwatch_leader",
}


def alert_rules() -> list[dict[str, Any]]:
    rule = load_yaml(BASE / "prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    groups = rule["spec"]["groups"]
    assert groups and all(g["name"] and g["rules"] for g in groups)
    return [r for g in groups for r in g["rules"]]


def test_every_rule_is_complete() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(set(names)) == len(names)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_rule_queries_exported_metrics(rule: dict[str, Any]) -> None:
    assert promql_problems(rule["expr"]) == []


def test_the_rules_cover_each_condition() -> None:
    exprs = " ".join(r["expr"] for r in alert_rules())
    assert [what for what, metric in WATCHED.items() if metric not in exprs] == []
    assert 'driftwatch_rollout_phase{phase="paused"}' in exprs


def test_every_dashboard_query_uses_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = list(walk_dashboard(dashboard))
    assert len(exprs) >= 15
    assert {p: problems for p in exprs if (problems := promql_problems(p))} == {}
    assert dashboard["uid"] == "driftwatch"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("driftwatch_events_total > 0", "driftwatch_events_total: no such metric"),
        (
            'driftwatch_rollout_phase{stage="paused"} == 1',
            "driftwatch_rollout_phase: no label stage",
        ),
        ("max by (model) (driftwatch_leader) == 0", "groups by model"),
        ("up == 0", "names no driftwatch metric"),
        # Stored as exported_job: the scrape target has a job label of its own.
        (
            'driftwatch_scheduler_job_failures_total{job="evaluate"}',
            "driftwatch_scheduler_job_failures_total: no label job",
        ),
    ],
)
def test_the_check_finds_unknown_metrics_and_labels(expr: str, problem: str) -> None:
    assert any(problem in p for p in promql_problems(expr))
