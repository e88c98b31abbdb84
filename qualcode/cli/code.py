"""qualcode code: import transcripts and suggest codes, then print the summary table."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from qualcode.analysis import SuggestionSummary
from qualcode.cli._common import Arg, ProjectOpt, app, console, err_console, is_interactive, user_errors, warn
from qualcode.coding import CodeResult, code
from qualcode.project import Project

EXIT_SKIPPED = 3


@app.command("code")
@user_errors
def code_cli(
    paths: Optional[List[Path]] = Arg(None, help="Transcript files or folders.", show_default="transcripts/ in the project"),
    project: Path = ProjectOpt,
) -> None:
    """Import new or changed transcripts and suggest codes for every respondent segment.

    Unchanged files (same content hash) are not processed again. Exits with 3 when
    some files were skipped (the rest are imported).

    Example: qualcode code --project my-study transcripts/lead-01.txt
    """
    with Project.open(project) as opened, _progress() as progress:
        result = code(opened, paths=paths, on_progress=progress)
    render_result(result)
    if result.summary is not None:
        console.print(render_summary(result.summary))
    if result.skipped:
        raise typer.Exit(EXIT_SKIPPED)


class _progress:
    """A rich progress bar on stderr for long runs; silent when stderr is not a terminal."""

    def __enter__(self) -> "_progress":
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        if is_interactive():
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=err_console, transient=True,
            )
            self.bar.start()
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or total < 2:
            return
        if stage not in self.tasks:
            label = {"import": "Importing", "resuggest": "Re-suggesting"}.get(stage, stage)
            self.tasks[stage] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[stage], completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def render_result(result: CodeResult) -> None:
    for message in result.warnings:
        warn(message)
    for skipped in result.skipped:
        err_console.print(f"[red]Skipped[/] {escape(skipped.path)}: {escape(skipped.reason)}")
    parts = [
        f"{len(result.imported)} imported",
        f"{len(result.updated)} updated",
        f"{len(result.unchanged)} unchanged",
        f"{len(result.skipped)} skipped",
    ]
    console.print("Transcripts: " + ", ".join(parts) + f". {result.segments} respondent segments in the project.")
    if result.resuggested:
        console.print(f"Suggestions recomputed for {len(result.resuggested)} transcripts (codebook or pipeline changed).")
    if result.retired_with_decisions:
        console.print(
            f"{result.retired_with_decisions} segments with decisions no longer appear in their changed transcripts; "
            "their decisions are kept but hidden."
        )


def render_summary(summary: SuggestionSummary) -> Table:
    table = Table(title=f"Suggested codes: respondents by {summary.attribute}", title_justify="left")
    table.add_column("Code", no_wrap=True)
    table.add_column("Segments", justify="right")
    for group in summary.groups:
        table.add_column(group, justify="right")
    table.add_column("All", justify="right")
    table.add_row(
        "N (respondents)", "", *[str(summary.respondents.get(group, 0)) for group in summary.groups], str(summary.transcripts),
        style="dim", end_section=True,
    )
    for row in summary.rows:
        name = "  " * row.depth + row.code
        style = "bold" if row.depth == 0 else None
        table.add_row(name, str(row.segments), *[str(row.by_group[group]) for group in summary.groups], str(row.transcripts), style=style)
    table.caption = (
        f"{summary.transcripts} transcripts, {summary.segments} respondent segments. "
        "Group columns count respondents with at least one suggestion."
    )
    return table
