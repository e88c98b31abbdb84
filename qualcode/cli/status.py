"""qualcode status: how much is reviewed, per transcript and per code, and by whom."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from qualcode.cli._common import ProjectOpt, app, console, user_errors
from qualcode.errors import ProjectError
from qualcode.project import Project
from qualcode.review import StatusReport, review_status


@app.command("status")
@user_errors
def status_cli(project: Path = ProjectOpt) -> None:
    """Show review progress per transcript and per code, for each coder.

    Example: qualcode status --project my-study
    """
    opened = Project.open(project)
    if not opened.database_path.exists():
        raise ProjectError("no project database yet", path=opened.root, fix="run 'qualcode code' first")
    with opened.store() as store:
        report = review_status(store, opened.codebook())
    for table in render_status(report):
        console.print(table)


def render_status(report: StatusReport) -> list[Table]:
    transcripts = Table(title="Transcripts: segments reviewed by each coder", title_justify="left")
    transcripts.add_column("Transcript", no_wrap=True)
    transcripts.add_column("Role")
    transcripts.add_column("Segments", justify="right")
    transcripts.add_column("Suggested", justify="right")
    for coder in report.coders:
        transcripts.add_column(coder, justify="right")
    for row in report.transcripts:
        transcripts.add_row(row.transcript, row.role, str(row.segments), str(row.suggested),
                            *[f"{row.coders[c].reviewed}/{row.segments}" for c in report.coders])
    codes = Table(title="Codes: accepted / rejected / added by each coder", title_justify="left")
    codes.add_column("Code", no_wrap=True)
    codes.add_column("Suggested", justify="right")
    for coder in report.coders:
        codes.add_column(coder, justify="right")
    for row in report.codes:
        codes.add_row("  " * row.depth + row.code, str(row.suggested),
                      *[f"{row.coders[c].accepted}/{row.coders[c].rejected}/{row.coders[c].added}" for c in report.coders])
    if not report.coders:
        codes.caption = "No decisions yet: run 'qualcode review'."
    tables = [transcripts, codes]
    if report.model:
        models = Table(
            title=f"Learned models (run {report.model_run}, {report.model['trained_at']}, {report.model['examples']} reviewed segments)",
            title_justify="left",
        )
        for name in ("Code", "yes", "no", "CV F1", "CV kappa"):
            models.add_column(name, justify="left" if name == "Code" else "right")
        for code, info in report.model["codes"].items():
            models.add_row(code, str(info["positives"]), str(info["negatives"]), f"{info['cv_f1']:.2f}", f"{info['cv_kappa']:.2f}")
        for code, info in report.model.get("rules_better", {}).items():
            models.add_row(code, "", "", f"rules kept: kappa {info['rules_kappa']:.2f}", f"model {info['model_cv_kappa']:.2f}", style="dim")
        for code, info in report.model["too_few_examples"].items():
            models.add_row(code, str(info["positives"]), str(info["negatives"]), "rules only", "", style="dim")
        tables.append(models)
    return tables
