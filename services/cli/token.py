"""`thumbwire token`: prints a bearer token for the given workspaces, signed with
THUMBWIRE_AUTH_SECRET (or `make run`'s development secret)."""

from __future__ import annotations

import argparse
import os
import re

from services.cli.credentials import token_authority
from services.core import validation
from services.core.config import Settings
from services.core.errors import InvalidArgument

DEFAULT_TTL_S = 3600.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> float:
    """`90`, `90s`, `30m`, `1h`, `7d` in seconds."""
    match = _DURATION.match(text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"not a positive duration such as 90s, 30m, 1h or 7d: {text}"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def workspace(text: str) -> str:
    try:
        return validation.workspace_id(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        dest="workspaces",
        action="append",
        required=True,
        type=workspace,
        help="a workspace the token grants (repeat for more)",
    )
    parser.add_argument(
        "--ttl", type=duration_s, default=DEFAULT_TTL_S, help="lifetime: 90s, 30m, 1h (default), 7d"
    )
    parser.add_argument("--sub", default=os.environ.get("USER") or "thumbwire", help="the user")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    print(token_authority(settings).issue(args.sub, args.workspaces, args.ttl))
    return 0
