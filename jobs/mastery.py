"""Mastery jobs: thin wrappers, the computation lives in :mod:`analytics.knowledge`."""

from __future__ import annotations

from analytics.knowledge import refit


def refit_mastery() -> dict[str, int]:
    """The nightly job (``jobs/schedule.py``): every topic's BKT parameters by EM from all
    attempts, every student's mastery recomputed with them, and the mastery snapshot
    rewritten from the first attempt's day through today. It reads the whole log each time,
    so one run catches up any nights that were missed."""
    return refit()
