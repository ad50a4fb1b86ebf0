"""Analytics jobs: thin wrappers, the computation lives in :mod:`analytics`."""

from __future__ import annotations

import uuid
from datetime import date

from analytics.rollup import rollup_pending
from analytics.sessions import compute_session_metrics as _compute_session_metrics


def compute_session_metrics(session_id: str | uuid.UUID) -> None:
    """Enqueued when a session ends (and by the idle-session sweep): its ``session_metrics`` row."""
    _compute_session_metrics(session_id)


def aggregate_daily_stats(day: date | str | None = None) -> list[date]:
    """The nightly job (``jobs/schedule.py``): roll up the days not rolled up yet, and the last two."""
    return rollup_pending(day)
