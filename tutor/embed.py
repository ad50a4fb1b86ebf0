"""Signed tokens for the embedded tutor.

A host site signs ``{"sub": its student id, "name": display name, "subject"?: subject id,
"class"?: a class's join code, "exp": unix time}`` as a JWT with HMAC SHA-256 (any JWT library does it; see
docs/EMBEDDING.md). Each host site has its own key: ``EMBED_SITES`` maps site ids to secrets
and the token names its site in the ``kid`` header; a token without ``kid`` is signed with
``EMBED_SECRET`` and belongs to the site ``default``. Students are known by (site, sub), so
two portals' student "42" are two students. The student is created on first use. Tokens
live at most an hour (a page load's worth; ten minutes is plenty).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt

from foundation.config import parse_embed_sites

MAX_LIFETIME_S = 3600
DEFAULT_SITE = "default"  # the site of tokens without "kid", signed with EMBED_SECRET
LEEWAY_S = 30


class EmbedTokenError(ValueError):
    pass


@dataclass(frozen=True)
class EmbedClaims:
    site: str
    external_id: str
    display_name: str
    subject: str | None
    class_code: str | None = None  # the "class" claim: the student is placed in that class


def make_token(
    secret: str,
    external_id: str,
    display_name: str,
    subject: str | None = None,
    ttl: int = 600,
    kid: str | None = None,
    class_code: str | None = None,
) -> str:
    """What a host site does (used by tests and the docs' example)."""
    claims = {"sub": external_id, "name": display_name, "exp": int(time.time()) + ttl}
    if subject:
        claims["subject"] = subject
    if class_code:
        claims["class"] = class_code
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid} if kid else None)


def site_keys(config: Mapping[str, Any]) -> Mapping[str, str]:
    """Every host site's key, the ``default`` one (EMBED_SECRET) included when set."""
    return _site_keys(config.get("EMBED_SITES") or "", config.get("EMBED_SECRET") or "")


@functools.lru_cache(maxsize=8)
def _site_keys(sites: str, secret: str) -> Mapping[str, str]:
    # Parsed once per setting value, not on every embed request.
    keys = parse_embed_sites(sites)
    if secret:
        keys[DEFAULT_SITE] = secret
    return MappingProxyType(keys)


def verify_token(keys: Mapping[str, str], token: str) -> EmbedClaims:
    """The claims of a valid token; ``keys`` maps site ids to secrets (:func:`site_keys`)."""
    if not keys:
        raise EmbedTokenError("embedding is not enabled on this server (EMBED_SECRET / EMBED_SITES are not set)")
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise EmbedTokenError("the embed token is not valid") from None
    site = kid if isinstance(kid, str) and kid else DEFAULT_SITE
    secret = keys.get(site)
    if secret is None:
        raise EmbedTokenError(f"the embed token names an unknown host site ({site!r})")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], leeway=LEEWAY_S, options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise EmbedTokenError("the embed token has expired; reload the page on the host site") from None
    except jwt.PyJWTError:
        raise EmbedTokenError("the embed token is not valid") from None
    if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], int | float):
        raise EmbedTokenError("the embed token's 'exp' must be a number (Unix time)")
    if claims["exp"] - time.time() > MAX_LIFETIME_S + LEEWAY_S:
        raise EmbedTokenError(f"the embed token lives too long (at most {MAX_LIFETIME_S // 60} minutes)")
    sub, name, subject = claims.get("sub"), claims.get("name") or "", claims.get("subject")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 200:
        raise EmbedTokenError("the embed token's 'sub' must be a non-empty string of at most 200 characters")
    if not isinstance(name, str) or (subject is not None and not isinstance(subject, str)):
        raise EmbedTokenError("the embed token's 'name' and 'subject' must be strings")
    class_code = claims.get("class")
    if class_code is not None and (not isinstance(class_code, str) or len(class_code) > 32):
        raise EmbedTokenError("the embed token's 'class' must be a class's join code (a short string)")
    return EmbedClaims(
        site=site,
        external_id=sub.strip(),
        display_name=name.strip()[:120] or "Student",
        subject=subject,
        class_code=class_code or None,
    )
