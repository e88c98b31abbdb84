"""qualcode stats: theme frequency by respondent type (or any attribute) in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from qualcode.cli._common import Opt, ProjectOpt, app, console, user_errors
from qualcode.vocabulary import Status, choices

if TYPE_CHECKING:
    from rich.table import Table

    from qualcode.analysis import Table as Frequency


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
    from qualcode.analysis import theme_table
    from qualcode.project import Project

    with Project.open(project) as opened:
        table = theme_table(opened, by=by, status=status, coder=coder)
    console.print(render_frequency(table, status=status, segments=segments))


def render_frequency(table: "Frequency", *, status: str, segments: bool = False) -> "Table":
    from rich.table import Table

    groups = [*table.attrs["groups"], "All"]
    index = {name: position for position, name in enumerate(table.columns)}
    rendered = Table(title=f"Respondents raising each code, by {' x '.join(table.attrs['by'])} ({status} codings)", title_justify="left")
    rendered.add_column("Code", no_wrap=True)
    for group in groups:
        rendered.add_column(group, justify="right")
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
        rendered.add_row("  " * depth + row[0], *cells, style="bold" if depth == 0 else None)
    return rendered
