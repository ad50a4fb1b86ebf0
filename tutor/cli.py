"""``flask --app app users ...`` and ``flask --app app demo ...``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from .extensions import db
from .users import UserError, create_user, delete_user, find_user_by_email

users_cli = AppGroup("users", help="Manage accounts.")
demo_cli = AppGroup("demo", help="Demo and benchmark data.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--role", type=click.Choice(["student", "admin"]), default="student", show_default=True)
@click.option("--name", "display_name", default=None, help="Display name (defaults to the e-mail's local part).")
@click.option("--grade", "grade_level", type=click.IntRange(1, 13), default=None, help="Grade level, 1 to 13.")
def users_create(email: str, password: str, role: str, display_name: str | None, grade_level: int | None) -> None:
    """Create a student or an admin."""
    try:
        user = create_user(email, password, role=role, display_name=display_name, grade_level=grade_level)
        db.session.commit()
    except UserError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.role} {user.email} (id {user.id})")


@users_cli.command("delete")
@click.option("--email", required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def users_delete(email: str, yes: bool) -> None:
    """Delete an account and all its tutoring data (privacy requests)."""
    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"no user with the e-mail {email}")
    if not yes:
        click.confirm(f"Delete {user.email} and all their sessions and messages?", abort=True)
    counts = delete_user(user)
    click.echo(f"deleted {email}: {counts['sessions']} sessions, {counts['replies']} tutor replies")


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
    from .demo import DemoSeedError, seed_demo

    try:
        result = seed_demo(
            db.engine, students=students, days=days, sessions=sessions, seed=random_seed, progress=not quiet
        )
    except DemoSeedError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
