"""qualcode db: the project database itself: upgrade its schema, copy it to another database."""

from __future__ import annotations

from pathlib import Path

import typer

from qualcode.cli._common import Opt, ProjectOpt, app, console, escape, user_errors, warn

db_app = typer.Typer(name="db", help="The project database: upgrade its schema, copy it between SQLite and PostgreSQL.", no_args_is_help=True,
                     rich_markup_mode=None)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@user_errors
def upgrade_cli(project: Path = ProjectOpt) -> None:
    """Bring the project database to this qualcode's schema: one transaction, under a lock, so coders never see half of it.

    A PostgreSQL project is never upgraded without being asked (every coder's qualcode must
    agree on the schema); an SQLite project upgrades itself after a backup. Take
    'qualcode backup' first.

    Example: qualcode db upgrade --project my-study
    """
    from qualcode.project import Project
    from qualcode.project.maintenance import upgrade

    with Project.open(project) as opened:
        result = upgrade(opened)
    if result.old_version == result.new_version:
        console.print(f"{escape(result.database)}: schema version {result.new_version}, already up to date.")
    else:
        console.print(f"{escape(result.database)}: schema upgraded from version {result.old_version} to {result.new_version}.")


@db_app.command("copy")
@user_errors
def copy_cli(
    to: str = Opt(..., "--to", help="The empty database to copy into: postgresql://HOST/DBNAME, postgresql:///?service=NAME, or sqlite:///PATH."),
    project: Path = ProjectOpt,
) -> None:
    """Copy the project database into another, empty database (SQLite to PostgreSQL and back), every decision,
    note, model run and batch id intact; both are then read back and compared table by table.

    Example: qualcode db copy --to postgresql://db.example.org/study
    """
    from qualcode.database_url import has_password, without_password
    from qualcode.project import Project
    from qualcode.project.maintenance import copy_database

    if has_password(to):
        warn("the URL holds a password, which other users of this machine may see; libpq reads it from ~/.pgpass or PGPASSWORD instead")
    with Project.open(project, read_only=True) as opened:
        report = copy_database(opened, to=to)
    counts = ", ".join(f"{count:,} {table}" for table, count in report.rows.items() if table != "meta")
    console.print(f"Copied {escape(report.source)} to {escape(report.target)}: {counts}; read back and identical.")
    bare, password = without_password(to)
    where = report.target if password is None else bare
    console.print(f"To work in the copy, set 'database: {escape(where)}' in qualcode.yaml (or QUALCODE_DATABASE_URL), "
                  + ("with its password in ~/.pgpass or PGPASSWORD, never in the file, " if password is not None else "")
                  + "then run 'qualcode check'.")
