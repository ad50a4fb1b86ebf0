"""Analytics: what the nightly job and the dashboard share.

- :mod:`analytics.tables`: the rollup tables (and ``session_metrics``, ``daily_stats``);
- :mod:`analytics.rollup`: computing rollups (the nightly job writes them; the dashboard's live
  days compute them without writing);
- :mod:`analytics.sessions`: per-session metrics;
- :mod:`analytics.reads`: what the dashboard reads, as DataFrames;
- :mod:`analytics.cli`: ``flask --app app analytics rollup``.

Jobs in ``jobs/analytics.py`` are thin wrappers around these; the dashboard imports only this
package, never ``jobs/``.
"""
