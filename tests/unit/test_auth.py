"""Tokens: what verifies, what does not and why, and that no message quotes a token or the
secret."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jwt
import pytest

from services.cli.token import duration_s
from services.core.auth import LEEWAY_S, Claims, TokenAuthority, bearer_token
from services.core.config import ConfigError, Settings
from services.core.dev_secret import load_or_create_dev_secret, read_dev_secret
from services.core.errors import PermissionDenied, Unauthenticated

# 64 bytes: long enough for the HS512 token below too.
SECRET = "s" * 64
OTHER_SECRET = "o" * 64


@pytest.fixture
def tokens() -> TokenAuthority:
    return TokenAuthority(SECRET)


def signed(claims: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def later(seconds: float = 86_400) -> int:
    """A moment that is still to come when the test runs: the parameters below are made when
    the suite is collected, and the unit tests run last (at 13 min on a machine with both cores
    busy elsewhere, 10 min was past and they all read "expired")."""
    return int(time.time() + seconds)


def test_an_issued_token_verifies_to_its_claims(tokens: TokenAuthority) -> None:
    token = tokens.issue("ann", ["ws-b", "ws-a", "ws-a"], ttl_s=60)
    exp = jwt.decode(token, SECRET, algorithms=["HS256"])["exp"]
    assert tokens.verify(token) == Claims("ann", frozenset({"ws-a", "ws-b"}), float(exp))
    assert exp - time.time() == pytest.approx(60, abs=2)
    assert tokens.verify(token).valid_until() == exp + LEEWAY_S
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["workspaces"] == ["ws-a", "ws-b"]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (TokenAuthority(SECRET).issue("ann", ["w"], 60, now=time.time() - 3600), "expired"),
        (TokenAuthority(OTHER_SECRET).issue("ann", ["w"], 60), "signature"),
        (signed({"sub": "a", "workspaces": ["w"], "exp": later()}, algorithm="HS512"), "HS256"),
        (jwt.encode({"sub": "a", "workspaces": ["w"], "exp": later()}, None, "none"), "HS256"),
        (signed({"sub": "a", "workspaces": ["w"]}), "no exp claim"),
        (signed({"workspaces": ["w"], "exp": later()}), "no sub claim"),
        (signed({"sub": "a", "exp": later()}), "no workspaces claim"),
        (signed({"sub": "a", "workspaces": "w", "exp": later()}), "list of workspace ids"),
        (signed({"sub": "a", "workspaces": [1], "exp": later()}), "list of workspace ids"),
        (signed({"sub": "", "workspaces": ["w"], "exp": later()}), "non-empty"),
        (signed({"sub": 7, "workspaces": ["w"], "exp": later()}), "claims are invalid"),
        (
            signed({"sub": "a", "workspaces": ["w"], "exp": later(), "nbf": later()}),
            "not valid yet",
        ),
        ("not.a.jwt", "well-formed"),
        ("", "well-formed"),
    ],
    ids=[
        "expired",
        "other-secret",
        "hs512",
        "alg-none",
        "no-exp",
        "no-sub",
        "no-workspaces",
        "workspaces-string",
        "workspaces-numbers",
        "empty-sub",
        "sub-number",
        "not-yet",
        "garbage",
        "empty",
    ],
)
def test_a_token_that_does_not_hold_is_unauthenticated_and_not_quoted(
    tokens: TokenAuthority, token: str, reason: str
) -> None:
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(token)
    message = str(caught.value)
    assert reason in message
    assert SECRET not in message and OTHER_SECRET not in message
    assert not token or token not in message
    # `from None`: no PyJWT exception (which may quote parts of the token) rides along.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_short_or_missing_secret_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="THUMBWIRE_AUTH_SECRET is not set"):
        TokenAuthority.from_settings(Settings())
    with pytest.raises(ConfigError, match="too short") as caught:
        TokenAuthority.from_settings(Settings(auth_secret="short-secret"))
    assert "short-secret" not in str(caught.value)


def test_secrets_stay_out_of_reprs() -> None:
    settings = Settings(auth_secret=SECRET, s3_secret_key="s3-key-value")
    assert SECRET not in repr(settings) and "s3-key-value" not in repr(settings)
    assert SECRET not in repr(TokenAuthority(SECRET))
    assert dataclasses.replace(settings, namespace="x").auth_secret == SECRET


def test_claims_admit_only_their_workspaces() -> None:
    claims = Claims("ann", frozenset({"a", "b"}), later())
    claims.require("a")
    with pytest.raises(PermissionDenied, match="workspace c"):
        claims.require("c")


@pytest.mark.parametrize(
    ("value", "token"), [("Bearer abc", "abc"), ("bearer  abc ", "abc"), (" BEARER x.y.z", "x.y.z")]
)
def test_bearer_values_give_their_token(value: str, token: str) -> None:
    assert bearer_token(value) == token


@pytest.mark.parametrize("value", ["Basic abc", "Bearer", "Bearer   ", "abc", "Token abc"])
def test_other_authorization_values_are_unauthenticated(value: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        bearer_token(value)
    assert "abc" not in str(caught.value)


def test_issue_refuses_nonsense(tokens: TokenAuthority) -> None:
    with pytest.raises(ValueError, match="subject"):
        tokens.issue("", ["w"], 60)
    with pytest.raises(ValueError, match="positive"):
        tokens.issue("ann", ["w"], 0)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "0", "1w", "1.5.h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration_s(text)


def test_the_dev_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev-auth-secret"
    assert read_dev_secret(path) is None
    secret = load_or_create_dev_secret(path)
    assert len(secret) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_dev_secret(path) == secret == read_dev_secret(path)
    TokenAuthority(secret)  # long enough to be used
