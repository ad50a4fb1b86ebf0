"""gunicorn's logger with credentials taken out of the access log.

Kept apart from ``foundation.logs`` (which imports Flask, and so ``ssl``): gunicorn's master
imports its logger class before it forks the gevent workers, and ``ssl`` imported there
before gevent patches it makes gevent warn on every start.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

# Query-string parameters that carry credentials (the embed page's ?token=...).
_SECRET_PARAMS = re.compile(r"(?i)\b(token|access_token|jwt|api_key|key)=[^&\s\"]+")


def redact(text: str) -> str:
    """``text`` with credential-carrying query parameters replaced by ``[redacted]``."""
    return _SECRET_PARAMS.sub(r"\1=[redacted]", text)


class RedactingLogger(Logger):
    """gunicorn's logger, with tokens taken out of the request line and query string."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "{raw_uri}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
