"""qualcode export: spreadsheets, CSV tables, a quotes appendix and REFI-QDA files in exports/."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from qualcode.cli._common import Opt, ProjectOpt, app, console, escape, user_errors, warn
from qualcode.vocabulary import ExportFormat, Status, choices


@app.command("export")
@user_errors
def export_cli(
    project: Path = ProjectOpt,
    format: str = Opt("all", "--format", "-f", help=f"What to write, comma-separated: {choices(ExportFormat)}, or all."),
    by: Optional[List[str]] = Opt(None, "--by", help="Extra breakdown sheets/tables: an attribute, or attributes crossed with commas. Repeatable."),
    status: str = Opt(Status.CONFIRMED.value, "--status", help=f"Which codings count in the tables: {choices(Status)}."),
    coder: Optional[str] = Opt(None, "--coder", help="Only this coder's decisions.", show_default="every coder"),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Folder to write into.", show_default="exports/ in the project"),
) -> None:
    """Export themes.xlsx, CSV tables (codings.csv and one per table), quotes.md, project.qdpx and codebook.qdc.

    Example: qualcode export --format xlsx,md --by sector --by role,organisation_type
    """
    from qualcode.exchange.export import export
    from qualcode.project import Project

    with Project.open(project, read_only=True) as opened:
        result = export(opened, formats=format, output_dir=output, status=status, coder=coder, by=by or [])
    for note in result.notes:
        warn(note)
    for path in result.files:
        console.print(f"Wrote {escape(str(path))}" + (f" ({result.rows} rows)" if path.name == "codings.csv" else ""))
