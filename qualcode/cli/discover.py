"""qualcode discover: candidate themes among what no code covers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from qualcode.cli._common import Opt, ProjectOpt, app, console, err_console, escape, is_interactive, user_errors

if TYPE_CHECKING:
    from qualcode.suggest.discover import Discovery


@app.command("discover")
@user_errors
def discover_cli(
    project: Path = ProjectOpt,
    everything: bool = Opt(False, "--all", help="Group every respondent segment, not only those no code covers."),
    llm: bool = Opt(False, "--llm", help="Ask the study's language model (the 'llm:' block) to name and describe each group from its quotes."),
    min_size: Optional[int] = Opt(None, "--min-size", min=2, help="The smallest group worth calling a theme.",
                                  show_default="5, or 1% of the segments grouped"),
    output: Optional[Path] = Opt(None, "--output", help="Write candidates.md and candidates.yaml here.", show_default="exports/"),
) -> None:
    """Find candidate themes the codebook lacks: groups of segments that say similar things, with a name, who raised
    them and representative quotes; writes exports/candidates.md and exports/candidates.yaml.

    Example: qualcode discover --project my-study, then qualcode codebook --add exports/candidates.yaml --only 1,3
    """
    from qualcode.exchange.candidates import write_candidates
    from qualcode.project import Project
    from qualcode.suggest.discover import discover, name_with_llm

    with Project.open(project) as opened:
        with _LateProgress() as progress:
            found = discover(opened, everything=everything, min_size=min_size, on_progress=progress)
        if llm and found.candidates:
            named = name_with_llm(opened, found)
            console.print(f"The language model named {named} of {len(found.candidates)} groups.")
        written = write_candidates(opened, found, output)
    render_discovery(found)
    console.print(f"Wrote {escape(opened.relative(written.markdown))} and {escape(opened.relative(written.fragment))}.")
    if found.candidates:
        numbers = ",".join(str(candidate.number) for candidate in found.candidates[:2])
        console.print(f"Add candidates to the codebook with: qualcode codebook --add {escape(opened.relative(written.fragment))} --only {numbers}")


class _LateProgress:
    """A progress bar that appears only once the work has taken two seconds."""

    def __enter__(self) -> "_LateProgress":
        self.started = time.monotonic()
        self.bar: Any = None
        self.task: Any = None
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None and is_interactive() and time.monotonic() - self.started >= 2.0:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("Grouping segments"), BarColumn(), TimeElapsedColumn(), console=err_console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("discover", total=total)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def render_discovery(found: "Discovery") -> None:
    from rich.table import Table

    where = "every respondent segment" if found.everything else "the respondent segments no code covers"
    if not found.candidates:
        console.print(f"No candidate themes among {where} ({found.considered} segments): nothing says the same thing often enough "
                      "to be a theme." + (" Try --all, or --min-size smaller." if found.considered else ""))
        return
    table = Table(title=f"Candidate themes among {where}: {found.considered} segments, {found.noise} in no group", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Theme (most distinctive words)")
    table.add_column("Segments", justify="right")
    table.add_column("Transcripts", justify="right")
    for group in found.groups:
        table.add_column(escape(group), justify="right")
    for candidate in found.candidates:
        name = escape(candidate.label) + f"\n[dim]{escape(candidate.name)}[/]" if candidate.label else escape(candidate.name)
        table.add_row(str(candidate.number), name, str(candidate.size), str(candidate.transcripts),
                      *[str(candidate.spread[group][0]) for group in found.groups])
    table.caption = f"Group columns: segments, by {escape(found.attribute)}. Quotes: exports/candidates.md."
    table.caption_justify = "left"
    console.print(table)
