"""``flask --app app db backup FILE`` and ``db restore FILE``: PostgreSQL dumps that work with
the app's own database URL.

The app's URL names its driver (``postgresql+psycopg2://``), which ``pg_dump`` cannot read,
and the embedded development server has its own binaries. These commands hand the PostgreSQL
tools a plain ``postgresql://`` URL, pick a ``pg_dump`` / ``pg_restore`` at least as new as
the server (the system's, or the embedded server's from the ``pgserver`` package), write the
dump to a temporary file first (a failed backup leaves no empty file behind), and restore with
``--clean --if-exists`` so that restoring into an empty database works too, then migrate the
restored database to this code's schema.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import text


class BackupError(click.ClickException):
    pass


def libpq_url(url: str) -> str:
    """The app's SQLAlchemy URL as libpq reads it (no ``+driver``)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url.strip())


def _server_major() -> int:
    from sqlalchemy.exc import DBAPIError

    from .extensions import db

    try:
        with db.engine.connect() as conn:
            return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    except DBAPIError as exc:
        raise BackupError(f"cannot reach the database: {str(exc.orig).strip().splitlines()[0]}") from None


def _candidates(name: str) -> list[str]:
    found = [shutil.which(name)]
    try:
        import pgserver

        found.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name))
    except ImportError:
        pass
    return [c for c in found if c and os.access(c, os.X_OK)]


def find_tool(name: str, server_major: int) -> str:
    """A ``name`` binary of at least the server's major version."""
    seen = []
    for candidate in _candidates(name):
        out = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", out)
        major = int(match.group(1)) if match else 0
        seen.append(f"{candidate} ({major})")
        if major >= server_major:
            return candidate
    raise BackupError(
        f"no {name} of version {server_major} or newer was found (tried: {', '.join(seen) or 'none on PATH'}); "
        f"install the PostgreSQL {server_major} client tools"
    )


def _run(args: list[str], what: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {' / '.join(detail[-3:]) or f'exit code {result.returncode}'}")


def backup(path: Path) -> int:
    """Dump the app's database to ``path`` (custom format). Returns its size in bytes."""
    url = libpq_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    tool = find_tool("pg_dump", _server_major())
    path = path.resolve()
    partial = path.with_name(path.name + ".partial")
    try:
        _run([tool, "--format=custom", "--no-owner", "--file", str(partial), "--dbname", url], "pg_dump")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def restore(path: Path) -> None:
    """Replace the app's database contents with the dump at ``path``, then migrate."""
    from flask_migrate import upgrade

    from .extensions import db

    if not path.is_file() or path.stat().st_size == 0:
        raise BackupError(f"{path} is not a backup (missing or empty)")
    url = libpq_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    tool = find_tool("pg_restore", _server_major())
    db.engine.dispose()  # our pooled connections would hold locks on the tables being replaced
    _run([tool, "--clean", "--if-exists", "--no-owner", "--exit-on-error", "--single-transaction",
          "--dbname", url, str(path)], "pg_restore")  # fmt: skip
    upgrade()


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(file: Path) -> None:
    """Back up the database to FILE (pg_dump custom format)."""
    click.echo(f"backing up to {file} ...")
    size = backup(file)
    click.echo(f"done: {file} ({size / 1e6:.1f} MB)")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore_command(file: Path, yes: bool) -> None:
    """Replace the database's contents with the backup FILE, then migrate it to this code."""
    if not yes:
        click.confirm("This replaces everything in the database with the backup. Go on?", abort=True)
    click.echo(f"restoring {file} ...")
    restore(file)
    click.echo("done: restored and migrated")


def init_app(app) -> None:  # type: ignore[no-untyped-def]
    from flask_migrate.cli import db as db_group

    if "backup" not in db_group.commands:
        db_group.add_command(backup_command)
        db_group.add_command(restore_command)
