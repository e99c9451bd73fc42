"""`thumbwire dlq list|replay`: the parking queue, for operators."""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from services.cli.connections import Connections, connected, publish_outbox
from services.core.config import Settings
from services.core.parking import NoParkingQueue, ParkedJob, list_parked, replay_parked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="show the parked jobs, oldest first")
    listing.add_argument("--limit", type=int, default=1000)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser("replay", help="give parked photos a fresh start")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every parked job")
    which.add_argument(
        "--photo", type=uuid.UUID, action="append", metavar="PHOTO_ID", help="repeatable"
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with connected(settings) as conns:
        try:
            if args.action == "list":
                return await _list(conns, args)
            return await _replay(conns, args)
        except NoParkingQueue as exc:
            print(f"thumbwire: {exc}", file=sys.stderr)
            return 1


async def _list(conns: Connections, args: argparse.Namespace) -> int:
    parked = await list_parked(conns.amqp, conns.topology, args.limit)
    for job in parked:
        print(json.dumps(_as_json(job)) if args.json else _as_line(job))
    if not args.json:
        print(f"{len(parked)} parked")
    return 0


def _as_json(parked: ParkedJob) -> dict[str, object]:
    return {
        "photo_id": str(parked.job.photo_id),
        "workspace_id": parked.job.workspace_id,
        "attempts": parked.history.attempt,
        "error": parked.history.last_error,
        "parked_at": parked.parked_at.isoformat() if parked.parked_at else None,
    }


def _as_line(parked: ParkedJob) -> str:
    when = parked.parked_at.isoformat(timespec="seconds") if parked.parked_at else "-"
    job, history = parked.job, parked.history
    return f"{when}\t{job.workspace_id}\t{job.photo_id}\t{history.attempt}\t{history.last_error}"


async def _replay(conns: Connections, args: argparse.Namespace) -> int:
    photo_ids = None if args.all else set(args.photo)
    report = await replay_parked(conns.amqp, conns.pool, conns.topology, photo_ids)
    await publish_outbox(conns)
    print(
        f"replayed {len(report.replayed)}; {len(report.discarded)} no longer failed (dropped);"
        f" {report.kept} left parked"
    )
    missing = (photo_ids or set()) - set(report.replayed) - set(report.discarded)
    for photo_id in sorted(missing, key=str):
        print(f"not parked: {photo_id}")
    return 1 if missing else 0
