"""``flask --app app analytics ...``: roll up analytics days by hand (backfills, reruns)."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup

analytics_cli = AppGroup("analytics", help="Analytics rollups.")

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@analytics_cli.command("rollup")
@click.option("--since", type=_DATE, default=None, help="First local day to roll up (YYYY-MM-DD).")
@click.option("--until", type=_DATE, default=None, help="Last local day, inclusive (default: yesterday).")
@click.option("--date", "one_day", type=_DATE, default=None, help="Roll up just this local day (YYYY-MM-DD).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def rollup(since: datetime | None, until: datetime | None, one_day: datetime | None, quiet: bool) -> None:
    """Write daily_stats and the rollup tables for a range of days (local days in ANALYTICS_TZ).

    Give exactly one of --since (with an optional --until) or --date. Days that are already
    rolled up are rewritten with the same figures; today can be rolled up, but only the part
    of it that has happened (the nightly job rolls it up again once it is over).
    """
    from .rollup import local_today, rollup_range

    if (since is None) == (one_day is None):
        raise click.UsageError("give exactly one of --since YYYY-MM-DD or --date YYYY-MM-DD")
    if until is not None and since is None:
        raise click.UsageError("--until goes with --since (for one day use --date)")
    tz = current_app.config.get("ANALYTICS_TZ") or "UTC"
    today = local_today(tz)
    if one_day is not None:
        first = last = one_day.date()
        if first > today:
            raise click.BadParameter(f"{first} is in the future (today is {today} in {tz})", param_hint="--date")
    else:
        first = since.date()
        last = until.date() if until is not None else today - timedelta(days=1)
        if first > today:
            raise click.BadParameter(f"{first} is in the future (today is {today} in {tz})", param_hint="--since")
        if until is not None and last < first:
            raise click.BadParameter(f"--until {last} is before --since {first}", param_hint="--until")
        if last > today:
            click.echo(f"note: --until {last} is in the future; rolling up through today ({today}, {tz})", err=True)
            last = today
        if last < first:  # --since today without --until: just today
            last = first
    days = rollup_range(first, last, progress=not quiet)
    span = f"{first}" if first == last else f"{first} to {last}"
    click.echo(f"rolled up {len(days)} day(s), {span} ({tz})")


def init_app(app: Flask) -> None:
    app.cli.add_command(analytics_cli)
