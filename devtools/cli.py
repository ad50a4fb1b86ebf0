"""``flask --app app demo ...``: demo and benchmark data."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from foundation.extensions import db

demo_cli = AppGroup("demo", help="Demo and benchmark data.")


@demo_cli.command("seed")
@click.option("--students", type=click.IntRange(1), default=200, show_default=True)
@click.option("--days", type=click.IntRange(1), default=120, show_default=True, help="Days of history ending today.")
@click.option(
    "--sessions", type=click.IntRange(1), default=None, help="Total sessions (default: about 0.3 per student per day)."
)
@click.option(
    "--seed", "random_seed", type=int, default=42, show_default=True, help="Random seed (same seed, same data)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo_seed(students: int, days: int, sessions: int | None, random_seed: int, quiet: bool) -> None:
    """Write realistic demo rows straight into the tables (COPY, in batches)."""
    from devtools.demo import DemoSeedError, seed_demo

    try:
        result = seed_demo(
            db.engine, students=students, days=days, sessions=sessions, seed=random_seed, progress=not quiet
        )
    except DemoSeedError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())
    from analytics.knowledge import refit

    fitted = refit()  # what the nightly job would do: mastery from the seeded attempts
    click.echo(f"mastery: {fitted['students']:,} student-topic rows, {fitted['fitted']} topic(s) fitted")


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_cli)
