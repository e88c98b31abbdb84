"""qualcode backup and check: keeping a project safe."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qualcode.cli._common import Opt, ProjectOpt, app, console, escape, user_errors


@app.command("backup")
@user_errors
def backup_cli(
    project: Path = ProjectOpt,
    output: Optional[Path] = Opt(None, "--output", "-o", help="Where to write the copy.", show_default=".qualcode/backups/project-TIME.db"),
) -> None:
    """Write a consistent copy of the project database (safe while others code or review).

    Example: qualcode backup --output ~/backups/study.db
    """
    from qualcode.project import Project
    from qualcode.project.maintenance import backup

    with Project.open(project, read_only=True) as opened:
        path = backup(opened, output=output)
    console.print(f"Backed up to {escape(str(path))} ({path.stat().st_size:,} bytes)")


@app.command("check")
@user_errors
def check_cli(project: Path = ProjectOpt) -> None:
    """Verify a project: schema version, database integrity, orphan rows, changed or missing transcript files.

    Exits with 1 when it finds a problem, and says how to repair it.

    Example: qualcode check --project my-study
    """
    from qualcode.project import Project
    from qualcode.project.maintenance import check

    with Project.open(project, read_only=True) as opened:
        report = check(opened)
    for note in report.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}")
    if report.ok:
        console.print(f"OK: schema version {report.schema_version}, {report.transcripts} transcripts, database intact.")
        return
    version = report.schema_version if report.schema_version >= 0 else "unknown"
    console.print(f"Schema version {version}, {report.transcripts} transcripts. Problems:")
    for problem in report.problems:
        console.print(f"  - {escape(problem)}")
    for fix in report.fixes:
        console.print(f"  Fix: {escape(fix)}")
    raise typer.Exit(1)
