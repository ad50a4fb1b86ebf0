"""``flask --app app users ...``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from foundation.extensions import db

from .users import UserError, create_user, delete_user, find_user_by_email

users_cli = AppGroup("users", help="Manage accounts.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 8 characters.")
@click.option("--role", type=click.Choice(["student", "teacher", "admin"]), default="student", show_default=True)
@click.option("--name", "display_name", default=None, help="Display name (defaults to the e-mail's local part).")
@click.option("--grade", "grade_level", type=click.IntRange(1, 13), default=None, help="Grade level, 1 to 13.")
def users_create(email: str, password: str, role: str, display_name: str | None, grade_level: int | None) -> None:
    """Create a student, a teacher (classes, rosters, their students' sessions) or an admin."""
    try:
        user = create_user(email, password, role=role, display_name=display_name, grade_level=grade_level)
        db.session.commit()
    except UserError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.role} {user.email} (id {user.id})")


@users_cli.command("set-password")
@click.option("--email", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=True)
def users_set_password(email: str, password: str) -> None:
    """Give an account a new password; every login it has (all devices) ends."""
    from .auth import end_all_logins
    from .users import hash_password, password_problem

    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"no user with the e-mail {email}")
    problem = password_problem(password, user.email)
    if problem:
        raise click.ClickException(problem)
    user.password_hash = hash_password(password)
    end_all_logins(user)
    db.session.commit()
    click.echo(f"new password set for {user.email}; their logins have ended")


@users_cli.command("delete")
@click.option("--email", default=None, help="The account's e-mail address.")
@click.option("--external-id", default=None, help="An embed student: the host site's id for them (the token's sub).")
@click.option("--site", default="default", show_default=True, help="With --external-id: the host site (EMBED_SITES).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def users_delete(email: str | None, external_id: str | None, site: str, yes: bool) -> None:
    """Delete an account and all its tutoring data (privacy requests)."""
    from .auth import embed_user

    if bool(email) == bool(external_id):
        raise click.UsageError("give either --email or --external-id")
    if email:
        user = find_user_by_email(email)
        if user is None:
            raise click.ClickException(f"no user with the e-mail {email}")
    else:
        user = embed_user(site, external_id)
        if user is None:
            raise click.ClickException(f"no embed student with the external id {external_id!r} on the site {site!r}")
    who = user.email
    if not yes:
        click.confirm(f"Delete {who} and all their sessions and messages?", abort=True)
    counts = delete_user(user)
    click.echo(f"deleted {who}: {counts['sessions']} sessions, {counts['replies']} tutor replies")


def init_app(app: Flask) -> None:
    from .guardrail_cli import guardrail_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(guardrail_cli)
