"""``driftwatch alerts``: the alert outbox from the command line (list, deliver now)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from db.outbox import DeliveryRepository, DeliveryStatus, event_action
from db.session import transaction
from service.cli.common import load, sessions_for
from service.errors import ServiceError


def cmd_alerts_list(args: argparse.Namespace) -> int:
    cfg = load(args)
    with transaction(sessions_for(cfg, args)) as s:
        rows = DeliveryRepository(s).listing(args.status, args.model, args.limit)
        items = [
            {
                "delivery": d.delivery.id,
                "event": d.event.id,
                "channel": d.delivery.channel,
                "status": d.delivery.status,
                "attempts": d.delivery.attempts,
                "dedup_key": d.delivery.dedup_key,
                "action": d.delivery.action,
                "kind": d.event.kind,
                "model": d.event.model,
                "created_at": d.event.created_at.isoformat(),
                "next_attempt_at": d.delivery.next_attempt_at.isoformat(),
                "last_error": d.delivery.last_error,
                "message": d.event.message,
            }
            for d in rows
        ]
        undelivered = [
            {"event": e.id, "kind": e.kind, "model": e.model, "action": event_action(e)}
            for e in DeliveryRepository(s).unrouted(args.limit)
        ]
    if args.json:
        print(json.dumps({"deliveries": items, "unrouted": undelivered}, indent=2))
        return 0
    for i in items:
        print(
            f"{i['delivery']:>6} {i['status']:<9} {i['channel']:<14} {i['action']:<7} "
            f"{i['dedup_key']:<32} attempts {i['attempts']}"
            + (f"  {i['last_error']}" if i["last_error"] else "")
        )
    if undelivered:
        print(f"{len(undelivered)} event(s) not routed yet")
    return 0


def cmd_alerts_deliver(args: argparse.Namespace) -> int:
    """One delivery pass now, as the service's ``alerts`` job would do it."""
    from service.alerts import build_worker
    from service.alerts.errors import AlertError

    cfg = load(args)
    sessions = sessions_for(cfg, args)
    try:
        worker = build_worker(cfg.alerts, sessions)
    except AlertError as exc:
        raise ServiceError(str(exc)) from exc
    try:
        sent = worker.tick()
    finally:
        worker.close()
    print(f"{sent} alert(s) delivered")
    return 0


def add_alerts_commands(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="the alert outbox")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    ls = alerts_sub.add_parser("list", help="alert deliveries, newest first (dead ones too)")
    ls.add_argument("--config")
    ls.add_argument("--model")
    ls.add_argument("--status", choices=[str(s) for s in DeliveryStatus])
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_alerts_list)
    deliver = alerts_sub.add_parser("deliver", help="route and deliver due alerts once, now")
    deliver.add_argument("--config")
    deliver.set_defaults(func=cmd_alerts_deliver)
