"""qualcode review: confirm, reject or add codes one keystroke at a time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.text import Text

from qualcode.cli._common import Opt, ProjectOpt, app, console, err_console, user_errors
from qualcode.cli.keys import KeyReader, keys_for
from qualcode.vocabulary import ReviewOrder, Verdict, choices

if TYPE_CHECKING:
    from qualcode.review import ReviewSession

FOOTER = "a:accept 1-9:toggle x:reject c:add s:skip u:undo n:note w:widen ?:help q:quit"
HELP = """\
a      accept every suggestion not yet decided here, mark the segment reviewed, next
1-9    toggle one code: accepted <-> rejected (added codes: added <-> rejected)
x      reject every suggestion not yet decided here, mark the segment reviewed, next
c      add a code: type its number in the codebook list, or the start of its id or label
s      skip: go to the next segment without marking this one reviewed
u      undo your last action (again for the one before; works across sessions)
n      attach a note (memo) to this segment
w      widen the context: show the turns before and after
q      quit (every decision is already saved; reopening resumes where you left off)"""
CODE_STYLES = ("bold yellow", "bold cyan", "bold magenta", "bold green", "bold blue", "bold red", "yellow", "cyan", "magenta")
MARKS: dict[str | None, tuple[str, str]] = {Verdict.ACCEPTED: ("✔", "green"), Verdict.REJECTED: ("✘", "red"), Verdict.ADDED: ("✚", "cyan"), None: ("·", "dim")}


def render_screen(session: "ReviewSession", *, widen: bool = False, message: str = "", plain: bool = False, show_help: bool = False) -> Group:
    item = session.current
    parts: list = []
    if item is None:
        return Group(Text("Nothing to review with these filters."))
    position = f"segment {item.number}/{item.of} of {item.transcript_id}"
    values = [value for key, value in sorted(item.metadata.items(), key=lambda kv: (kv[0] != "role", kv[0]))]
    room = 78 - len(item.transcript_id) - len(position) - 4
    attributes = " · ".join(values)
    if len(attributes) > room:
        attributes = attributes[: max(0, room - 1)] + "…"
    header = Text.assemble((item.transcript_id, "bold"), "  ", (attributes, "dim"))
    header.append(" " * max(2, 78 - len(header.plain) - len(position)))
    header.append(position)
    parts.append(header)
    before, after = session.context(item, widen=widen)
    for turn in before:
        parts.append(_turn_text(turn.speaker, turn.text, "dim", limit=None if widen else 240))
    shown = session.shown_codes(item)
    body = Text(f"{item.speaker}: " if item.speaker else "", style="bold")
    segment = Text(item.text)
    styles = {entry.code: CODE_STYLES[(entry.number - 1) % len(CODE_STYLES)] for entry in shown}
    spans = sorted(
        ((evidence.start, evidence.end, styles.get(suggestion.code, "bold")) for suggestion in item.suggestions for evidence in suggestion.evidence),
        reverse=True,
    )
    if plain:
        # Without colour, brackets show what fired.
        text = item.text
        for start, end, _style in spans:
            text = text[:start] + "[" + text[start:end] + "]" + text[end:]
        segment = Text(text)
    else:
        for start, end, style in spans:
            segment.stylize(f"{style} underline", start, end)
    body.append_text(segment)
    parts.append(body)
    for turn in after:
        parts.append(_turn_text(turn.speaker, turn.text, "dim", limit=None))
    parts.append(Text(""))
    if not shown:
        parts.append(Text("No suggestions. c to add a code, a to mark reviewed with no code.", style="dim"))
    for entry in shown:
        mark, colour = MARKS[entry.verdict]
        line = Text(f"{entry.number} ", style="bold")
        line.append(mark, style=colour)
        line.append(f" {entry.code:<16.16}", style=styles.get(entry.code))
        if entry.suggestion is not None:
            line.append(f" {entry.suggestion.confidence:.2f} ")
            reason = entry.suggestion.reason(item.text)
            if entry.method == "batch":
                reason = "batch-accepted; " + reason
            line.append(reason[: max(0, 52)], style="dim")
        else:
            line.append(" added by you", style="dim")
        parts.append(line)
    state = session.state(item)
    for note in state.notes:
        parts.append(Text(f"note: {note}", style="italic"))
    if state.reviewed:
        parts.append(Text("(reviewed)", style="green"))
    if show_help:
        parts.append(Text(HELP))
    progress = session.progress()
    parts.append(Text(message or "", style="bold"))
    parts.append(
        Text(
            f"reviewed {progress.reviewed}/{progress.total} · accepted {progress.accepted} · rejected {progress.rejected} · "
            f"added {progress.added} · "
            + (f"{progress.per_minute:.1f} decisions/min" if progress.per_minute is not None else f"{progress.session_decisions} this session"),
            style="dim",
        )
    )
    parts.append(Text(FOOTER, style="reverse" if not plain else ""))
    return Group(*parts)


def _turn_text(speaker: str | None, text: str, style: str, limit: int | None) -> Text:
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return Text(f"{speaker + ': ' if speaker else ''}{text}", style=style)


def codebook_listing(session: "ReviewSession") -> Text:
    text = Text()
    for number, (code, depth) in enumerate(session.codebook.walk(), start=1):
        text.append(f"{number:>3} {'  ' * depth}{code.id}", style="bold")
        text.append(f"  {code.label}\n", style="dim")
    return text


def run_review(session: "ReviewSession", keys: KeyReader, out: Console, *, plain: bool = False, interactive: bool = True) -> str:
    """The review loop: draw, read one key, act. Returns why it ended ('quit', 'end of input', 'interrupted')."""
    widen = False
    message = ""
    show_help = False
    while True:
        if interactive:
            out.clear()
        else:
            from rich.rule import Rule

            out.print(Rule(style="dim"))
        out.print(render_screen(session, widen=widen, message=message, plain=plain, show_help=show_help))
        out.file.flush()  # the screen is the acknowledgement: it must not wait in a pipe's buffer
        show_help = False
        try:
            key = keys.read_key()
        except KeyboardInterrupt:
            return "interrupted"
        if key in ("", "\x04"):
            return "end of input"
        if key == "q":
            return "quit"
        message = ""
        if session.current is None:
            continue
        if key == "a":
            result = session.accept_all()
        elif key == "x":
            result = session.reject_all()
        elif key.isdigit() and key != "0":
            result = session.toggle(int(key))
        elif key == "s":
            result = session.skip()
        elif key == "u":
            result = session.undo()
        elif key == "w":
            widen = not widen
            continue
        elif key == "?":
            show_help = True
            continue
        elif key == "n":
            try:
                result = session.note(keys.read_line("Note (Enter to save, empty to cancel): "))
            except KeyboardInterrupt:
                return "interrupted"
        elif key == "c":
            out.print(codebook_listing(session))
            try:
                typed = keys.read_line("Code (number, or start of id or label): ")
            except KeyboardInterrupt:
                return "interrupted"
            matches = session.find_codes(typed)
            if len(matches) == 1:
                result = session.add_code(matches[0].id)
            else:
                message = (
                    f"Ambiguous '{typed}': {', '.join(code.id for code in matches)}." if matches else f"No code matches '{typed}'."
                )
                continue
        else:
            message = f"Unknown key {key!r}. Press ? for help."
            continue
        message = result.message
        if session.finished:
            message += " All segments in this queue are reviewed: u to undo, q to quit."


@app.command("review")
@user_errors
def review_cli(
    project: Path = ProjectOpt,
    coder: Optional[str] = Opt(None, "--coder", help="Your name; decisions of different coders are kept apart.", show_default="qualcode.yaml 'coder' or your user name"),
    order: str = Opt(ReviewOrder.TRANSCRIPT.value, "--order", help=f"Queue order: {choices(ReviewOrder)} (suggestions nearest 0.5 first)."),
    code: Optional[str] = Opt(None, "--code", help="Only segments with a suggestion of this code (or its children)."),
    transcript: Optional[str] = Opt(None, "--transcript", help="Only this transcript."),
    role: Optional[str] = Opt(None, "--role", help="Only transcripts whose role is this (lead, partner, ...)."),
    min_confidence: float = Opt(0.0, "--min-confidence", min=0.0, max=1.0, help="Hide suggestions below this confidence."),
    include_all: bool = Opt(False, "--all", help="Also segments without suggestions, to read everything and add codes."),
    plain: bool = Opt(False, "--plain", help="No colour; evidence shown in [brackets]."),
    accept_above_threshold: Optional[float] = Opt(
        None, "--accept-above", min=0.0, max=1.0, help="Without the loop: accept every suggestion at or above this confidence (recorded as batch decisions)."
    ),
) -> None:
    """Review suggestions one segment at a time, one key per decision; every decision is saved at once.

    Keys: a accept all, 1-9 toggle a code, x reject all, c add a code, s skip, u undo,
    n note, w widen context, ? help, q quit. Reopening resumes at your first unreviewed segment.

    Example: qualcode review --coder ann --role lead --order uncertain
    """
    from qualcode.project import Project
    from qualcode.review import ReviewFilter, ReviewSession, accept_above
    from qualcode.settings import default_coder
    from qualcode.training import maybe_retrain

    with Project.open(project) as opened:
        coder = coder or default_coder(opened.settings)
        filters = ReviewFilter(code=code, transcript=transcript, role=role, min_confidence=min_confidence, include_unsuggested=include_all, order=order)
        if accept_above_threshold is not None:
            count = accept_above(opened, coder=coder, threshold=accept_above_threshold, filters=filters)
            console.print(f"Accepted {count} suggestions at or above {accept_above_threshold:g} as {escape(coder)} (batch).")
            return
        retrained = maybe_retrain(opened)
        if retrained is not None:
            console.print(f"Models refitted on {retrained.examples} reviewed segments; {retrained.rescored} undecided segments re-scored.")
        opened.store.on_retry = lambda delay: err_console.print(
            f"[yellow]The connection to the database was lost; trying again in {delay:g} s. Nothing you saved is lost.[/]"
        )
        session = ReviewSession(opened, coder=coder, filters=filters)
        if not session.items:
            console.print("Nothing to review with these filters." + ("" if include_all else " (--all includes segments without suggestions)"))
            return
        interactive = console.is_terminal
        screen = Console(highlight=False, no_color=plain or console.no_color, force_terminal=None if interactive else False)
        with keys_for() as keys:
            ended = run_review(session, keys, screen, plain=plain, interactive=interactive)
        progress = session.progress()
        console.print(
            f"Review {ended}: {progress.session_decisions} decisions this session as {escape(coder)}; "
            f"reviewed {progress.reviewed}/{progress.total}. Everything is saved."
        )
    if ended == "interrupted":
        raise typer.Exit(130)
