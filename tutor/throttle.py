"""Login throttling: failed logins are counted per account and per client address in Redis."""

from __future__ import annotations

from flask import current_app, request

from foundation.ratelimit import Limit, hit, peek

# Failed logins allowed before a pause: per account, and per client address.
LOGIN_LIMIT_ACCOUNT = Limit(10, 15 * 60)
LOGIN_LIMIT_ADDRESS = Limit(50, 15 * 60)


def login_throttled(email: str) -> int:
    """Seconds to wait before another login attempt is allowed (0: go ahead)."""
    from foundation.extensions import redis_ext

    account = email.strip().lower()
    try:
        redis = redis_ext.conn
        waits = [
            peek(redis, f"login:acct:{account}", LOGIN_LIMIT_ACCOUNT),
            peek(redis, f"login:addr:{request.remote_addr}", LOGIN_LIMIT_ADDRESS),
        ]
    except Exception:  # noqa: BLE001 - Redis down: do not lock everybody out
        return 0
    return max(waits)


def record_failed_login(email: str) -> None:
    from foundation.extensions import redis_ext

    try:
        hit(redis_ext.conn, f"login:acct:{email.strip().lower()}", LOGIN_LIMIT_ACCOUNT)
        hit(redis_ext.conn, f"login:addr:{request.remote_addr}", LOGIN_LIMIT_ADDRESS)
    except Exception:  # noqa: BLE001
        current_app.logger.warning("could not record a failed login (Redis down?)")
