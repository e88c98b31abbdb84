"""qualcode export: write the codings to files in exports/."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.markup import escape

from qualcode.cli._common import Opt, ProjectOpt, app, console, user_errors
from qualcode.export import FORMATS, export


@app.command("export")
@user_errors
def export_cli(
    project: Path = ProjectOpt,
    format: str = Opt("csv", "--format", "-f", help=f"What to write: {', '.join(FORMATS)}."),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Folder to write into.", show_default="exports/ in the project"),
    coder: Optional[str] = Opt(None, "--coder", help="Only this coder's decisions.", show_default="every coder"),
) -> None:
    """Export codings: exports/codings.csv has one row per segment and code.

    Example: qualcode export --format csv --project my-study
    """
    result = export(project_dir=project, format=format, output_dir=output, coder=coder)
    for path in result.files:
        console.print(f"Wrote {escape(str(path))} ({result.rows} rows)")
