"""Signed tokens for the embedded tutor.

A host site signs ``{"sub": its student id, "name": display name, "subject"?: subject id,
"exp": unix time}`` as a JWT with HMAC SHA-256 and ``EMBED_SECRET`` (any JWT library does it;
see docs/EMBEDDING.md). The student is created on first use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

MAX_LIFETIME_S = 24 * 3600
LEEWAY_S = 30


class EmbedTokenError(ValueError):
    pass


@dataclass(frozen=True)
class EmbedClaims:
    external_id: str
    display_name: str
    subject: str | None


def make_token(secret: str, external_id: str, display_name: str, subject: str | None = None, ttl: int = 3600) -> str:
    """What a host site does (used by tests and the docs' example)."""
    claims = {"sub": external_id, "name": display_name, "exp": int(time.time()) + ttl}
    if subject:
        claims["subject"] = subject
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, token: str) -> EmbedClaims:
    if not secret:
        raise EmbedTokenError("embedding is not enabled on this server (EMBED_SECRET is not set)")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], leeway=LEEWAY_S, options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise EmbedTokenError("the embed token has expired; reload the page on the host site") from None
    except jwt.PyJWTError:
        raise EmbedTokenError("the embed token is not valid") from None
    if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], int | float):
        raise EmbedTokenError("the embed token's 'exp' must be a number (Unix time)")
    if claims["exp"] - time.time() > MAX_LIFETIME_S + LEEWAY_S:
        raise EmbedTokenError(f"the embed token lives too long (at most {MAX_LIFETIME_S // 3600} h)")
    sub, name, subject = claims.get("sub"), claims.get("name") or "", claims.get("subject")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 200:
        raise EmbedTokenError("the embed token's 'sub' must be a non-empty string of at most 200 characters")
    if not isinstance(name, str) or (subject is not None and not isinstance(subject, str)):
        raise EmbedTokenError("the embed token's 'name' and 'subject' must be strings")
    return EmbedClaims(external_id=sub.strip(), display_name=name.strip()[:120] or "Student", subject=subject)
