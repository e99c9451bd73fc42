"""The development secret: `make run` without THUMBWIRE_AUTH_SECRET makes one and keeps it
under ./var, so that tokens stay valid across restarts; the CLI, run from the same folder,
signs its tokens with it too. Never for production: anyone who can read ./var can sign."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEV_SECRET_PATH = Path("var/dev-auth-secret")


def read_dev_secret(path: Path = DEV_SECRET_PATH) -> str | None:
    """The development secret, or None when `make run` has not made one here."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def load_or_create_dev_secret(path: Path = DEV_SECRET_PATH) -> str:
    """The development secret, made on first use: 48 random bytes, readable by its owner only."""
    existing = read_dev_secret(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    return secret
