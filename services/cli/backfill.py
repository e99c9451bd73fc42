"""`thumbwire backfill`: queues photos that have no thumbnails."""

from __future__ import annotations

import argparse

from services.cli.connections import connected, publish_outbox
from services.core.backfill import backfill
from services.core.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="only this workspace's photos (default: all)")
    parser.add_argument(
        "--include-failed",
        action="store_true",
        help="also reset failed photos (their attempts start again) and queue them",
    )
    parser.add_argument("--limit", type=int, default=10_000, help="at most this many photos")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with connected(settings) as conns:
        report = await backfill(conns.pool, args.workspace, args.include_failed, args.limit)
        await publish_outbox(conns)
    print(f"queued {report.pending} pending and {report.failed} failed photos")
    return 0
