"""Values from the stream cannot act as markup or break a receiver's limits (issue 17,
point 3): each channel's payload for a hostile ``model_version``/model name."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from service.alerts import alertmanager, opsgenie, pagerduty, slack, webhook
from service.alerts.base import Action, Alert, Severity
from service.alerts.http import body
from service.alerts.log import LogChannel
from service.alerts.masking import mask_url, redact

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOSTILE = "v1 <!channel> <https://evil.example|click here> & <@U123>\nCRITICAL forged line"


def alert(version: str = HOSTILE, model: str = "fraud", action: Action = Action.TRIGGER) -> Alert:
    return Alert(
        event_id=1,
        model=model,
        kind="data_drift",
        action=action,
        severity=Severity.WARNING,
        message=f"dataset drift in {model}/{version}",
        created_at=NOW,
        details={"model_version": version, "scope": version},
    )


def test_slack_shows_control_sequences_as_text_never_as_mentions_or_links() -> None:
    sent = json.dumps(slack.payload(alert(model="m<!here>")))
    assert "<!channel>" not in sent and "<!here>" not in sent
    assert "<https://evil" not in sent and "<@U123>" not in sent
    assert "&lt;!channel&gt;" in sent and "&lt;https://evil.example|click here&gt;" in sent
    # An ampersand is escaped once, so "&lt;" typed by a sender cannot become "<".
    assert slack.escape("&lt;!channel&gt;") == "&amp;lt;!channel&amp;gt;"


def test_pagerduty_keeps_a_long_versions_dedup_key_within_its_limit_and_distinct() -> None:
    one, two = alert("a" * 300 + "1"), alert("a" * 300 + "2")
    keys = [pagerduty.payload(a, "key")["dedup_key"] for a in (one, two)]
    assert all(len(k) <= pagerduty.DEDUP_KEY_CHARS for k in keys)
    assert keys[0] != keys[1]
    # The resolve carries the same key as its trigger.
    resolve = pagerduty.payload(alert("a" * 300 + "1", action=Action.RESOLVE), "key")
    assert resolve["dedup_key"] == keys[0]
    event = pagerduty.payload(alert(model="m" * 400), "key")["payload"]
    assert len(event["source"]) <= 255 and len(event["component"]) <= 255


def test_opsgenie_bounds_alias_tags_and_entity_and_closes_by_the_same_alias() -> None:
    long = alert("b" * 600, model="m" * 600)
    created = opsgenie.create_payload(long)
    assert len(created["alias"]) <= opsgenie.ALIAS_CHARS
    assert len(created["message"]) <= 130 and len(created["entity"]) <= 512
    assert all(len(tag) <= 50 for tag in created["tags"])
    assert opsgenie.alias(alert("b" * 600, model="m" * 600)) == created["alias"]
    assert opsgenie.alias(alert("b" * 599 + "c", model="m" * 600)) != created["alias"]


def test_alertmanager_keeps_a_hostile_value_one_printable_label_value() -> None:
    [posted] = alertmanager.payload(alert(), NOW, timedelta(minutes=2))
    labels = posted["labels"]
    assert set(labels) == {"alertname", "model", "kind", "severity", "service", "scope"}
    assert labels["alertname"] == "driftwatch_data_drift"
    assert "\n" not in labels["scope"] and "\\n" in labels["scope"]
    assert "\n" not in posted["annotations"]["summary"]


def test_the_webhook_carries_values_exactly_as_signed_json_strings() -> None:
    payload = webhook.payload(alert())
    content = body(payload)
    assert json.loads(content)["details"]["model_version"] == HOSTILE
    mac = hmac.new(b"k", b"1700000000." + content, hashlib.sha256).hexdigest()
    assert webhook.signature(b"k", "1700000000", content) == "sha256=" + mac


def test_the_log_channel_keeps_a_hostile_value_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    asyncio.run(LogChannel("log").send(alert(), NOW))
    [record] = [r for r in caplog.records if r.name == "service.alerts.log"]
    assert "\n" not in record.getMessage() and "\\n" in record.getMessage()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/secret", "https://hooks.slack.com/***"),
        ("http://user:pw@am.local:9093", "http://am.local:9093"),
        ("https://x.example/hook?token=abc", "https://x.example/***"),
        ("https://events.pagerduty.com", "https://events.pagerduty.com"),
        ("not a url", "***"),
    ],
)
def test_a_url_is_shown_as_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_redact_removes_secrets_urls_and_line_breaks() -> None:
    text = "bad key k3y-s3cret at http://u:p@h:1/x?t=1\nnext"
    assert redact(text, ["k3y-s3cret"]) == "bad key *** at http://h:1/***\\nnext"
