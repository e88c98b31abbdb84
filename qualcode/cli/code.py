"""qualcode code: import transcripts and suggest codes, then print the summary table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from qualcode.cli._common import Arg, Opt, ProjectOpt, app, console, err_console, escape, is_interactive, user_errors, warn

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from qualcode.analysis.counts import SuggestionSummary
    from qualcode.run.coding import CodeResult, DryRun
    from qualcode.suggest.llm import LlmPlan, LlmReport

EXIT_SKIPPED = 3
ENGINES = ("local", "dask")


@app.command("code")
@user_errors
def code_cli(
    paths: Optional[List[Path]] = Arg(None, help="Transcript files or folders.", show_default="transcripts/ in the project"),
    project: Path = ProjectOpt,
    engine: str = Opt("local", "--engine", help="local: this machine's processes; dask: a Dask cluster (pip install 'qualcode[dask]')."),
    scheduler: Optional[str] = Opt(None, "--scheduler", help="With --engine dask: a running cluster's scheduler, tcp://HOST:8786.",
                                   show_default="a LocalCluster on this machine"),
    workers: int = Opt(2, "--workers", min=1, help="With --engine dask and no --scheduler: LocalCluster workers (one thread each)."),
    dashboard: bool = Opt(False, "--dashboard", help="With --engine dask and no --scheduler: serve Dask's dashboard on port 8787 (another when it is taken; its address is printed)."),
    output: Optional[str] = Opt(None, "--output", help="With --engine dask: parquet:DIR writes Parquet shards there and leaves the database "
                                                       "alone (merge them with 'qualcode import-results DIR')."),
    dry_run: bool = Opt(False, "--dry-run", help="Say what would be imported and, with a language model set up, how many requests and "
                                                 "about how many tokens it would be sent; write and send nothing."),
    force: bool = Opt(False, "--force", help="Read every transcript again, changed or not (decisions stay on segments whose text "
                                             "did not change)."),
    llm_refresh: bool = Opt(False, "--llm-refresh", help="Ask the language model again about the segments nobody has decided on, "
                                                         "with your latest decisions as its examples."),
) -> None:
    """Import new or changed transcripts and suggest codes for every respondent segment.

    Unchanged files (same content hash) are not processed again. Exits with 3 when
    some files were skipped (the rest are imported).

    Example: qualcode code --project my-study transcripts/lead-01.txt
    """
    from qualcode.project import Project
    from qualcode.run.coding import code, code_to_shards
    from qualcode.run.dask_engine import DaskOptions

    if engine not in ENGINES:
        raise typer.BadParameter(f"use one of: {', '.join(ENGINES)}", param_hint="--engine")
    if engine == "local" and (scheduler or output or dashboard):
        raise typer.BadParameter("--scheduler, --dashboard and --output go with --engine dask", param_hint="--engine")
    if output is not None and not output.startswith("parquet:"):
        raise typer.BadParameter("write it as parquet:DIR", param_hint="--output")
    options = DaskOptions(scheduler=scheduler, workers=workers, dashboard=dashboard) if engine == "dask" else None
    if dry_run:
        from qualcode.run.coding import dry_run as plan_run

        with Project.open(project, read_only=True) as opened:
            render_dry_run(plan_run(opened, paths=paths))
        return
    with Project.open(project) as opened, _progress() as progress:
        if options is not None and dashboard:
            options = replace(options, on_dashboard=lambda link: progress.pause(f"Dask's dashboard: {escape(link)}"))
        if output is not None and options is not None:
            result = code_to_shards(opened, output[len("parquet:") :], paths=paths, engine=options, on_progress=progress)
        else:
            result = code(opened, paths=paths, on_progress=progress, engine=options, llm_refresh=llm_refresh, force=force,
                          on_llm_plan=lambda plan: progress.pause(render_llm_plan(plan)))
    render_result(result, into_shards=output is not None)
    if result.shards:
        console.print(f"Wrote {len(result.shards)} shards to {escape(output[len('parquet:'):] if output else '')}. "
                      f"Merge them into the project with: qualcode import-results {escape(output[len('parquet:'):] if output else '')}")
    if output is None and result.summary is not None:  # shards leave the database as it was: no summary of it
        if result.summary.transcripts == 0 and not result.skipped:
            console.print("No transcripts in the project yet: put interview files (txt, md, docx, vtt, srt) in "
                          f"{escape(str(paths[0]) if paths else 'the transcripts folder')} and run 'qualcode code' again.")
        else:
            console.print(render_summary(result.summary))
    if result.skipped:
        raise typer.Exit(EXIT_SKIPPED)


@app.command("import-results")
@user_errors
def import_results_cli(
    folder: str = Arg(..., help="A folder of Parquet shards written by 'qualcode code --engine dask --output parquet:DIR' (local, NFS, or s3:// with s3fs)."),
    project: Path = ProjectOpt,
) -> None:
    """Merge coding results made elsewhere (a cluster with no access to the project database) into the project.

    Merging is idempotent: a transcript already in the project is left as it is, so a folder
    merged twice, or after an interrupted merge, imports nothing twice.

    Example: qualcode import-results /shared/study-shards --project my-study
    """
    from qualcode.project import Project
    from qualcode.run.coding import import_results

    with Project.open(project) as opened, _progress() as progress:
        result = import_results(opened, folder, on_progress=progress)
    render_result(result)
    if result.summary is not None:
        console.print(render_summary(result.summary))
    if result.skipped:
        raise typer.Exit(EXIT_SKIPPED)


def _rate_column() -> Any:
    """A progress column of files (or shards) per second."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.1f}/s" if speed else "", style="dim")

    return Rate()


class _progress:
    """A rich progress bar on stderr for long runs; silent when stderr is not a terminal."""

    def __enter__(self) -> "_progress":
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        if is_interactive():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _rate_column(), TimeRemainingColumn(),
                console=err_console, transient=True,
            )
            self.bar.start()
        return self

    def pause(self, message: str) -> None:
        """Say something above the bar (or on its own line when there is none)."""
        if self.bar is not None:
            self.bar.console.print(message)
        else:
            err_console.print(message)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or total < 2:
            return
        if stage == "llm-failed":
            if "llm" in self.tasks:
                self.bar.update(self.tasks["llm"], description=f"Asking the language model (segments; {done} failed)")
            return
        if stage not in self.tasks:
            label = {"import": "Importing", "resuggest": "Re-suggesting", "dask": "Coding on Dask (files)", "merge": "Merging (shards)",
                     "llm": "Asking the language model (segments)"}.get(stage, stage)
            self.tasks[stage] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[stage], completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def render_result(result: "CodeResult", *, into_shards: bool = False) -> None:
    for message in result.warnings:
        warn(message)
    for skipped in result.skipped:
        err_console.print(f"[red]Skipped[/] {escape(skipped.path)}: {escape(skipped.reason)}")
    if into_shards:  # nothing went into the database: say what was coded, not what was imported
        console.print(f"Transcripts: {len(result.imported)} coded into shards, {len(result.skipped)} skipped; the project database is unchanged.")
        return
    parts = [
        f"{len(result.imported)} imported",
        f"{len(result.updated)} updated",
        f"{len(result.unchanged)} unchanged",
        f"{len(result.skipped)} skipped",
    ]
    console.print("Transcripts: " + ", ".join(parts) + f". {result.segments} respondent segments in the project.")
    if result.resegmented and result.resegmented != ["--force"]:
        console.print(f"The settings that shape segments changed since the last run ({', '.join(result.resegmented)}): every "
                      f"transcript was read and segmented again ({len(result.updated)} updated); decisions stay on segments whose text "
                      "did not change.")
    if result.resuggested:
        console.print(f"Suggestions recomputed for {len(result.resuggested)} transcripts (codebook or pipeline changed).")
    if result.retired_with_decisions:
        console.print(
            f"{result.retired_with_decisions} segments with decisions no longer appear in their changed transcripts; "
            "their decisions are kept but hidden."
        )
    if result.llm is not None:
        render_llm_report(result.llm)
    if result.ambiguous:
        console.print(
            f"{result.ambiguous} changed segments read like several earlier ones that carry different decisions; rather than "
            "guess, they start undecided and come back to review (the earlier decisions are kept, hidden)."
        )


def render_llm_plan(plan: "LlmPlan") -> str:
    """Said before the first request: which host receives how many segments."""
    where = "this machine" if plan.loopback else "ANOTHER MACHINE (allowed by 'allow_remote' in qualcode.yaml)"
    if not plan.segments:
        return f"Language model {escape(plan.model)}: every segment is answered already ({plan.cached} filed); nothing is sent."
    return (f"Language model {escape(plan.model)} at {escape(plan.host)} ({where}): sending {plan.segments:,} segments, about "
            f"{plan.tokens:,} prompt tokens" + (f"; {plan.cached:,} answered before, not sent again." if plan.cached else "."))


def render_llm_report(report: "LlmReport") -> None:
    counts = report.counts
    parts = [f"{counts.asked:,} segments answered now", f"{counts.cached:,} from earlier runs"]
    if counts.failed:
        parts.append(f"{counts.failed:,} failed (they keep their rule suggestions; 'qualcode code' asks them again)")
    console.print(f"Language model {escape(report.plan.model)}: " + ", ".join(parts) + f"; {report.merged:,} undecided segments' suggestions updated.")
    dropped = []
    if counts.invented:
        dropped.append(f"{counts.invented:,} codes whose quoted evidence is not in the segment")
    if counts.unknown:
        dropped.append(f"{counts.unknown:,} codes the codebook does not have")
    if counts.malformed:
        dropped.append(f"{counts.malformed:,} malformed replies (each asked again once)")
    if dropped:
        warn("Dropped from the language model's replies: " + "; ".join(dropped) + ".")
    for reason in counts.failures:
        warn(f"A segment failed: {escape(reason)}")


def render_dry_run(report: "DryRun") -> None:
    console.print(f"Dry run: {len(report.new)} new and {len(report.changed)} changed transcripts would be imported "
                  f"({report.segments:,} respondent segments); {report.unchanged} unchanged. Nothing was written.")
    for skipped in report.skipped:
        err_console.print(f"[red]Would skip[/] {escape(skipped.path)}: {escape(skipped.reason)}")
    if report.llm is not None:
        plan = report.llm
        console.print(f"Language model {escape(plan.model)} at {escape(plan.host)}"
                      f" ({'this machine' if plan.loopback else 'another machine'}): {plan.segments:,} requests, about {plan.tokens:,} "
                      f"prompt tokens (four characters a token), {plan.cached:,} segments answered before. Nothing was sent.")


def render_summary(summary: "SuggestionSummary") -> "Table":
    from rich.table import Table

    table = Table(title=f"Suggested codes: respondents by {escape(summary.attribute)}", title_justify="left")
    table.add_column("Code", no_wrap=True)
    table.add_column("Segments", justify="right")
    for group in summary.groups:
        table.add_column(escape(group), justify="right")
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
