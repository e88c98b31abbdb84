"""qualcode stats: theme frequency by respondent type (or any attribute) in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from qualcode.cli._common import Opt, ProjectOpt, app, clean, console, escape, user_errors
from qualcode.vocabulary import Status, choices

if TYPE_CHECKING:
    from rich.table import Table

    from qualcode.analysis.counts import Table as Frequency


@app.command("stats")
@user_errors
def stats_cli(
    project: Path = ProjectOpt,
    by: str = Opt("role", "--by", help="Attribute to break down by; two or more, comma-separated, are crossed (role,sector)."),
    status: str = Opt(Status.CONFIRMED.value, "--status", help=f"Which codings count: {choices(Status)} (confirmed = accepted or added by a coder)."),
    coder: Optional[str] = Opt(None, "--coder", help="Only this coder's decisions.", show_default="every coder"),
    segments: bool = Opt(False, "--segments", help="Also show coded segment counts per group."),
) -> None:
    """Theme frequency: respondents raising each code, and the % of their group.

    Example: qualcode stats --by role --status suggested
    """
    from qualcode.analysis.counts import theme_table
    from qualcode.project import Project

    with Project.open(project, read_only=True) as opened:
        table = theme_table(opened, by=by, status=status, coder=coder)
    for part in render_frequency(table, status=status, segments=segments, width=console.width):
        console.print(part)


def render_frequency(table: "Frequency", *, status: str, segments: bool = False, width: int = 80) -> list:
    """The frequency table for a terminal ``width`` wide: when its groups do not fit side by side, they are folded
    into several tables, each with the code column, rather than cut to 'empl…'."""
    groups = [*table.attrs["groups"], "All"]
    title = f"Respondents raising each code, by {' x '.join(table.attrs['by'])} ({status} codings)"
    code_width = max([4, *(len(row[0]) + 2 * max(depth, 0) for row, depth in zip(table.rows, table.attrs["depths"]))])
    cell_width = 9 + (5 if segments else 0)  # '12 (100%)' and a segment count
    need = {group: max(cell_width, *(len(word) for word in group.split())) + (6 if segments else 3) for group in groups}
    room = max(20, width - code_width - 4)
    chunks: list[list[str]] = [[]]
    used = 0
    for group in groups:
        if chunks[-1] and used + need[group] > room:
            chunks.append([])
            used = 0
        chunks[-1].append(group)
        used += need[group]
    from rich.text import Text

    parts: list = []
    for number, chunk in enumerate(chunks, start=1):
        suffix = f" ({number} of {len(chunks)})" if len(chunks) > 1 else ""
        parts += [Text(clean(title + suffix)), _frequency_table(table, chunk, segments=segments)]
    return parts


def _frequency_table(table: "Frequency", groups: list[str], *, segments: bool) -> "Table":
    from rich.table import Table

    index = {name: position for position, name in enumerate(table.columns)}
    rendered = Table()
    rendered.add_column("Code", no_wrap=True)
    for group in groups:
        # Headers wrap at spaces ('lead x' over 'third sector') but never lose letters.
        rendered.add_column(escape(group), justify="right", overflow="fold", min_width=max(9, *(len(word) for word in group.split())))
        if segments:
            rendered.add_column("segs", justify="right", style="dim")
    for row, depth in zip(table.rows, table.attrs["depths"]):
        if depth < 0:
            cells = []
            for group in groups:
                cells.append(f"N={row[index[f'{group}: respondents']]}")
                if segments:
                    cells.append(str(row[index[f"{group}: segments"]]))
            rendered.add_row("", *cells, style="dim", end_section=True)
            continue
        cells = []
        for group in groups:
            raised, percent = row[index[f"{group}: respondents"]], row[index[f"{group}: %"]]
            cells.append(f"{raised} ({percent:.0f}%)" if percent is not None else str(raised))
            if segments:
                cells.append(str(row[index[f"{group}: segments"]]))
        rendered.add_row("  " * depth + escape(row[0]), *cells, style="bold" if depth == 0 else None)
    return rendered
