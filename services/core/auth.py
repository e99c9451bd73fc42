"""Bearer tokens: HS256 JWTs with the claims `sub`, `workspaces` and `exp` (CONTRACT.md, Auth).

A TokenAuthority holds the secret: it issues tokens (the CLI, `make run`, tests) and verifies
them (the gRPC interceptor, the gateway middleware). Its error messages are fixed texts, so a
token or the secret never reaches a client, a log or a traceback."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from services.core.config import ConfigError, Settings
from services.core.errors import PermissionDenied, Unauthenticated

ALGORITHM = "HS256"
# HS256's output size: a shorter key is easier to brute-force than the MAC (RFC 7518 3.2).
MIN_SECRET_BYTES = 32
# Clock skew tolerated between the process that issued a token and the one checking it.
LEEWAY_S = 5
SECRET_VARIABLE = "THUMBWIRE_AUTH_SECRET"
AUTHORIZATION = "authorization"
SCHEME = "Bearer"
REQUIRED_CLAIMS = ["exp", "sub", "workspaces"]
# How a stream ends when its token expires (Claims.valid_until): the notifier's UNAUTHENTICATED
# detail, which tells a client to subscribe again with a new token (the CLI's watch does).
STREAM_TOKEN_EXPIRED = (
    "the token has expired: subscribe again with a new token, from the last event id received"
)

# Most specific first: ExpiredSignatureError and the others are InvalidTokenErrors too.
_REJECTIONS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.InvalidSignatureError, "the token's signature does not verify with this server's key"),
    (jwt.InvalidAlgorithmError, f"the token is not signed with {ALGORITHM}"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.DecodeError, "the bearer token is not a well-formed JWT"),
    (jwt.InvalidTokenError, "the token's claims are invalid"),
)


@dataclass(frozen=True)
class Claims:
    """Who called (`sub`), the workspaces the caller may read and write, and when the token
    expires (`exp`, seconds since the epoch)."""

    sub: str
    workspaces: frozenset[str]
    expires_at: float

    def valid_until(self) -> float:
        """The last moment verify() accepts the token (its exp and the leeway for clock
        skew): a stream it opened ends then (services.notifier)."""
        return self.expires_at + LEEWAY_S

    def require(self, workspace_id: str) -> None:
        """PermissionDenied unless the token lists `workspace_id`."""
        if workspace_id not in self.workspaces:
            raise PermissionDenied(f"the token does not grant access to workspace {workspace_id}")


class TokenAuthority:
    """Issues and verifies the tokens of one secret."""

    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{SECRET_VARIABLE} is too short: use at least {MIN_SECRET_BYTES} random bytes,"
                " e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        self._key = secret.encode()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenAuthority:
        """The services call this first: without a secret they must not start."""
        if not settings.auth_secret:
            raise ConfigError(
                f"{SECRET_VARIABLE} is not set: every call needs a bearer token signed with it."
                f" `make run` makes a development secret; elsewhere set {SECRET_VARIABLE} to at"
                f" least {MIN_SECRET_BYTES} random bytes"
            )
        return cls(settings.auth_secret)

    def __repr__(self) -> str:
        return "TokenAuthority(<secret hidden>)"

    def issue(
        self, sub: str, workspaces: Iterable[str], ttl_s: float, now: float | None = None
    ) -> str:
        """A token for `sub` and `workspaces` that expires `ttl_s` seconds after `now`."""
        if not sub:
            raise ValueError("a token needs a subject (sub)")
        if ttl_s <= 0:
            raise ValueError("a token's time to live must be positive")
        issued = time.time() if now is None else now
        claims = {
            "sub": sub,
            "workspaces": sorted(set(workspaces)),
            "iat": int(issued),
            "exp": int(issued + ttl_s),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> Claims:
        """The token's claims; Unauthenticated with a token-free reason when it does not hold."""
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(_rejection(exc)) from None
        return claims_of(payload)


def claims_of(payload: Mapping[str, Any]) -> Claims:
    """Checks the types PyJWT leaves to us: `sub` a non-empty string, `workspaces` a list of
    strings."""
    sub, workspaces = payload["sub"], payload["workspaces"]
    if not isinstance(sub, str) or not sub:
        raise Unauthenticated("the token's sub claim must be a non-empty string")
    if not isinstance(workspaces, list) or not all(isinstance(w, str) for w in workspaces):
        raise Unauthenticated("the token's workspaces claim must be a list of workspace ids")
    return Claims(sub, frozenset(workspaces), float(payload["exp"]))


def _rejection(exc: jwt.InvalidTokenError) -> str:
    return next(reason for kind, reason in _REJECTIONS if isinstance(exc, kind))


def authorization_value(token: str) -> str:
    """What a client sends as `authorization`: `Bearer <token>`."""
    return f"{SCHEME} {token}"


def bearer_token(authorization: str) -> str:
    """The token of an `authorization` value; Unauthenticated for any other scheme."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != SCHEME.lower() or not token.strip():
        raise Unauthenticated(f"authorization must be `{SCHEME} <token>`")
    return token.strip()
