"""qualcode stats: theme frequency by respondent type (or any attribute) in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.table import Table

from qualcode.analysis import STATUSES, coded_segments, theme_frequency
from qualcode.cli._common import Opt, ProjectOpt, app, console, user_errors
from qualcode.errors import ProjectError
from qualcode.export import parse_breakdowns
from qualcode.project import Project


@app.command("stats")
@user_errors
def stats_cli(
    project: Path = ProjectOpt,
    by: str = Opt("role", "--by", help="Attribute to break down by; two or more, comma-separated, are crossed (role,sector)."),
    status: str = Opt("confirmed", "--status", help=f"Which codings count: {', '.join(STATUSES)} (confirmed = accepted or added by a coder)."),
    coder: Optional[str] = Opt(None, "--coder", help="Only this coder's decisions.", show_default="every coder"),
    segments: bool = Opt(False, "--segments", help="Also show coded segment counts per group."),
) -> None:
    """Theme frequency: respondents raising each code, and the % of their group.

    Example: qualcode stats --by role --status suggested
    """
    opened = Project.open(project)
    if not opened.database_path.exists():
        raise ProjectError("no project database yet", path=opened.root, fix="run 'qualcode code' first")
    attributes = parse_breakdowns([by])[0] if by.strip() else ["role"]
    codebook = opened.codebook()
    with opened.store() as store:
        frame = coded_segments(store, codebook, status=status, coder=coder)
        table = theme_frequency(store, codebook, frame, by=attributes)
    console.print(render_frequency(table, status=status, segments=segments))


def render_frequency(table, *, status: str, segments: bool = False) -> Table:
    groups = [*table.attrs["groups"], "All"]
    rendered = Table(title=f"Respondents raising each code, by {' x '.join(table.attrs['by'])} ({status} codings)", title_justify="left")
    rendered.add_column("Code", no_wrap=True)
    for group in groups:
        rendered.add_column(group, justify="right")
        if segments:
            rendered.add_column("segs", justify="right", style="dim")
    for code, row in table.iterrows():
        if code == "N":
            cells = []
            for group in groups:
                cells.append(f"N={row[f'{group}: respondents']}")
                if segments:
                    cells.append(str(row[f"{group}: segments"]))
            rendered.add_row("", *cells, style="dim", end_section=True)
            continue
        cells = []
        for group in groups:
            raised, percent = row[f"{group}: respondents"], row[f"{group}: %"]
            cells.append(f"{raised} ({percent:.0f}%)" if percent == percent and percent is not None else str(raised))
            if segments:
                cells.append(str(row[f"{group}: segments"]))
        rendered.add_row("  " * int(row["depth"]) + code, *cells, style="bold" if row["depth"] == 0 else None)
    return rendered
