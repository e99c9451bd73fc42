"""Which bearer token a command sends: --token, else $THUMBWIRE_TOKEN, else one it signs itself
for the workspaces it touches, with THUMBWIRE_AUTH_SECRET or, in the folder where `make run`
runs, its development secret."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable

from services.core.auth import SECRET_VARIABLE, TokenAuthority
from services.core.config import ConfigError, Settings
from services.core.dev_secret import DEV_SECRET_PATH, read_dev_secret

TOKEN_VARIABLE = "THUMBWIRE_TOKEN"
# Tokens the CLI signs for its own calls need only outlive the command's first call.
OWN_TOKEN_TTL_S = 3600.0
OWN_TOKEN_SUB = "thumbwire-cli"


def add_token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        help=f"bearer token (default: ${TOKEN_VARIABLE}, else one signed with"
        f" ${SECRET_VARIABLE} or make run's {DEV_SECRET_PATH})",
    )


def token_authority(settings: Settings) -> TokenAuthority:
    """The authority of THUMBWIRE_AUTH_SECRET, or of make run's development secret."""
    secret = settings.auth_secret or read_dev_secret()
    if secret is None:
        raise SystemExit(
            f"thumbwire: no secret to sign with: set {SECRET_VARIABLE}, or run this where"
            f" `make run` keeps {DEV_SECRET_PATH}"
        )
    try:
        return TokenAuthority(secret)
    except ConfigError as exc:
        raise SystemExit(f"thumbwire: {exc}") from None


def given_token(args: argparse.Namespace) -> str:
    """The token the user gave (--token, else $THUMBWIRE_TOKEN); "" when none."""
    return (args.token or os.environ.get(TOKEN_VARIABLE, "")).strip()


def command_token(settings: Settings, args: argparse.Namespace, workspaces: Iterable[str]) -> str:
    """The token a command sends for `workspaces`: the one given, else a new one it signs."""
    return given_token(args) or token_authority(settings).issue(
        OWN_TOKEN_SUB, workspaces, OWN_TOKEN_TTL_S
    )
