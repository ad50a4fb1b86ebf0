"""Login throttling that an attacker cannot turn against others.

Failed logins are counted in Redis three ways: per account *and* client address together,
per client address across all accounts, and per account across all addresses. An address
that has not itself failed on an account is never slowed down for it, whatever others did:
an attacker guessing a student's password from elsewhere cannot lock the student out, and a
whole school behind one NAT address keeps logging in while one pupil mistypes. Once an
address has failed on an account, the first limit reached makes it wait:

- 5 failures of that address on that account in 15 minutes (the usual guessing);
- 300 failures of that address on any accounts (credential stuffing from one place; generous,
  because a school's NAT address carries many students' typos);
- 50 failures on that account from all addresses (guessing spread over many addresses).

Keys hold a hash of the e-mail address, never the address itself. The client address is
``request.remote_addr``: behind a reverse proxy set ``TRUSTED_PROXIES`` to the number of
proxies in front of the app, so that ``X-Forwarded-For`` is read from them and nobody else
(``docs/OPERATIONS.md``).
"""

from __future__ import annotations

import hashlib

from flask import current_app, request

from foundation.ratelimit import Limit, forget, hit, peek

LOGIN_LIMIT_PAIR = Limit(5, 15 * 60)
LOGIN_LIMIT_ADDRESS = Limit(300, 15 * 60)
LOGIN_LIMIT_ACCOUNT = Limit(50, 15 * 60)


def account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


def _keys(email: str) -> tuple[str, str, str]:
    account, address = account_key(email), request.remote_addr or "unknown"
    return f"login:pair:{account}:{address}", f"login:addr:{address}", f"login:acct:{account}"


def login_throttled(email: str) -> int:
    """Seconds to wait before this address may try this account again (0: go ahead)."""
    from foundation.extensions import redis_ext

    pair, address, account = _keys(email)
    try:
        redis = redis_ext.conn
        if not peek(redis, pair, Limit(1, LOGIN_LIMIT_PAIR.seconds)):
            return 0  # this address has not failed on this account: never held back
        return max(
            peek(redis, pair, LOGIN_LIMIT_PAIR),
            peek(redis, address, LOGIN_LIMIT_ADDRESS),
            peek(redis, account, LOGIN_LIMIT_ACCOUNT),
        )
    except Exception:  # noqa: BLE001 - Redis down: do not lock everybody out
        return 0


def record_failed_login(email: str) -> None:
    from foundation.extensions import redis_ext

    pair, address, account = _keys(email)
    try:
        redis = redis_ext.conn
        hit(redis, pair, LOGIN_LIMIT_PAIR)
        hit(redis, address, LOGIN_LIMIT_ADDRESS)
        hit(redis, account, LOGIN_LIMIT_ACCOUNT)
    except Exception:  # noqa: BLE001
        current_app.logger.warning("could not record a failed login (Redis down?)")


def forget_account(email: str) -> None:
    """Drop an account's failure counters (when the account is deleted)."""
    from foundation.extensions import redis_ext

    account = account_key(email)
    forget(redis_ext.conn, f"login:pair:{account}:*")
    forget(redis_ext.conn, f"login:acct:{account}")


def limit_wait(key: str, setting: str) -> int:
    """Count one event against the limit in ``setting``: 0 if allowed, else seconds to wait.

    A Redis outage must not stop students from learning: the limit then allows everything.
    """
    from foundation.extensions import redis_ext

    limit = Limit.parse(current_app.config[setting])  # checked when the settings load
    try:
        return hit(redis_ext.conn, key, limit)
    except Exception:  # noqa: BLE001
        current_app.logger.warning("%s unavailable (Redis down?); allowing the request", setting)
        return 0


def registration_wait() -> int:
    """Count a registration attempt from this address: 0 if allowed, else seconds to wait.

    Registering says whether an e-mail address already has an account (honestly: a student
    who forgot they registered must be told), so attempts per address are limited
    (``REGISTER_RATE_LIMIT``, generous enough for a class registering from one school).
    """
    return limit_wait(f"register:{request.remote_addr or 'unknown'}", "REGISTER_RATE_LIMIT")
