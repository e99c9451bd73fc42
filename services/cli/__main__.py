"""`thumbwire`: the command-line client."""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc

from services.cli import backfill, dlq, photos, token, upload, watch
from services.core.broker import BROKER_ERRORS
from services.core.config import Settings
from services.core.database import DATABASE_ERRORS


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="thumbwire", description="thumbwire command-line client")
    commands = root.add_subparsers(dest="command", required=True)
    upload.add_arguments(commands.add_parser("upload", help="upload photos"))
    watch.add_arguments(commands.add_parser("watch", help="follow a workspace's events"))
    dlq.add_arguments(commands.add_parser("dlq", help="the parking queue of failed jobs"))
    token.add_arguments(commands.add_parser("token", help="print a bearer token"))
    photos.add_arguments(commands.add_parser("photos", help="list, get, delete or retry photos"))
    backfill.add_arguments(
        commands.add_parser("backfill", help="queue the photos that have no thumbnails")
    )
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    commands = {
        "upload": upload.run,
        "watch": watch.run,
        "photos": photos.run,
        "token": token.run,
        "dlq": dlq.run,
        "backfill": backfill.run,
    }
    command = commands[args.command]
    try:
        sys.exit(asyncio.run(command(settings, args)))
    except grpc.aio.AioRpcError as exc:
        print(f"thumbwire: {exc.code().name}: {exc.details()}", file=sys.stderr)
        sys.exit(2 if exc.code() == grpc.StatusCode.UNAVAILABLE else 1)
    except (*BROKER_ERRORS, *DATABASE_ERRORS) as exc:
        print(f"thumbwire: UNAVAILABLE: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
