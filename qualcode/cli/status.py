"""qualcode status: how much is reviewed, per transcript and per code, and by whom."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qualcode.cli._common import ProjectOpt, app, console, escape, render_models, user_errors

if TYPE_CHECKING:

    from qualcode.analysis.status import StatusReport


@app.command("status")
@user_errors
def status_cli(project: Path = ProjectOpt) -> None:
    """Show review progress per transcript and per code, for each coder.

    Example: qualcode status --project my-study
    """
    from qualcode.analysis.status import review_status
    from qualcode.project import Project

    with Project.open(project, read_only=True) as opened:
        report = review_status(opened)
    for table in render_status(report):
        console.print(table)


def render_status(report: "StatusReport") -> list:
    from rich.table import Table
    from rich.text import Text

    # Titles as lines of their own: a table's title wraps to the table's width, mid-phrase.
    by_coder = " by each coder" if report.coders else ""
    transcripts = Table()
    transcripts.add_column("Transcript", no_wrap=True)
    transcripts.add_column("Role")
    transcripts.add_column("Segments", justify="right")
    transcripts.add_column("Suggested", justify="right")
    for coder in report.coders:
        transcripts.add_column(escape(coder), justify="right")
    for row in report.transcripts:
        transcripts.add_row(escape(row.transcript), escape(row.role), str(row.segments), str(row.suggested),
                            *[f"{row.coders[c].reviewed}/{row.segments}" for c in report.coders])
    codes = Table()
    codes.add_column("Code", no_wrap=True)
    codes.add_column("Suggested", justify="right")
    for coder in report.coders:
        codes.add_column(escape(coder), justify="right")
    for code_row in report.codes:
        codes.add_row("  " * code_row.depth + escape(code_row.code), str(code_row.suggested),
                      *[f"{code_row.coders[c].accepted}/{code_row.coders[c].rejected}/{code_row.coders[c].added}" for c in report.coders])
    if not report.coders:
        codes.caption = "No decisions yet: run 'qualcode review'."
    tables = [
        Text(f"Transcripts: respondent segments, those with suggestions, reviewed{by_coder}"), transcripts,
        Text("Codes: segments suggested" + (", and accepted / rejected / added by each coder" if report.coders else "")), codes,
    ]
    if report.model:
        title = f"Learned models (run {report.model_run}, {report.model['trained_at']}, {report.model['examples']} reviewed segments)"
        tables.append(render_models(title, report.models))
    return tables
