"""qualcode review: confirm, reject or add codes one keystroke at a time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console, Group
from rich.text import Text

from qualcode.cli._common import Opt, ProjectOpt, app, clean, console, err_console, escape, user_errors
from qualcode.cli.keys import RESIZED, KeyReader, keys_for
from qualcode.errors import ProjectError, QualcodeError
from qualcode.vocabulary import ReviewOrder, Verdict, choices

if TYPE_CHECKING:
    from qualcode.codebook import Code
    from qualcode.review.session import ReviewItem, ReviewSession
    from qualcode.suggest.refit import Refitter

FOOTER = "a:accept 1-9:no/yes x:reject c:add s:skip u:undo n:note w:widen ?:help q:quit"  # 80 columns at most
HELP = """\
a      accept every suggestion not yet decided here, mark reviewed, go on
1-9    say no or yes to one code: a suggested code is rejected at the first press,
       a code shown as the machine's no is accepted; again, and it flips back
       (an added code: added <-> rejected)
x      reject every suggestion not yet decided here, mark reviewed, go on
c      add a code: its number in the list, or the start of its id or label
s      skip: go on without marking this segment reviewed
u      undo your last action (again for the one before, also in past sessions)
n      attach a note (memo) to this segment; it is exported with its codings
w      widen: the whole answer when it is cut, and the turns before and after
q      quit: every decision is already saved, reopening resumes here

In the c and n prompts, Enter confirms; Esc, Ctrl-C or an empty line cancels."""
CODE_STYLES = ("bold yellow", "bold cyan", "bold magenta", "bold green", "bold blue", "bold red", "yellow", "cyan", "magenta")
CODE_WIDTH = 28  # code ids are aligned up to this many characters; a longer one is shown whole all the same
REASON_CHARS = 240  # what fired, shown whole up to this; it wraps onto the next lines
MARKS: dict[str | None, tuple[str, str]] = {Verdict.ACCEPTED: ("✔", "green"), Verdict.REJECTED: ("✘", "red"), Verdict.ADDED: ("✚", "cyan"), None: ("·", "dim")}


def render_screen(session: "ReviewSession", *, widen: bool = False, message: str = "", plain: bool = False, show_help: bool = False,
                  fit: Console | None = None, learning: dict[str, str] | None = None) -> Group:
    """The screen for the current segment. With ``fit`` (a terminal), earlier context is cut from the top so that the
    header, the segment, its codes and the footer stay on one screen."""
    item = session.current
    if item is None:
        return Group(Text("Nothing to review with these filters."))
    header = _header(item)
    if show_help:
        # Help is a screen of its own: added under a segment it pushed the header off a 24-line terminal.
        return Group(header, Text(""), Text(HELP), Text(""), Text("Press any key to go back to the segment.", style="bold"),
                     Text(FOOTER, style="reverse" if not plain else ""))
    before, after = session.context(item, widen=widen)
    earlier = [_turn_text(turn.speaker, turn.text, "dim", limit=None if widen else 240) for turn in before]
    rest: list = []
    shown = session.shown_codes(item)
    body = Text(f"{clean(item.speaker)}: " if item.speaker else "", style="bold")
    segment = Text(clean(item.text))  # one character for one: the evidence offsets still hold
    styles = {entry.code: CODE_STYLES[(entry.number - 1) % len(CODE_STYLES)] for entry in shown}
    spans = sorted(
        ((evidence.start, evidence.end, styles.get(suggestion.code, "bold")) for suggestion in item.suggestions for evidence in suggestion.evidence),
        reverse=True,
    )
    if plain:
        # Without colour, brackets show what fired: overlapping evidence (a rule's keyword inside a quote) in one pair.
        text = clean(item.text)
        merged: list[list[int]] = []
        for start, end, _style in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in reversed(merged):
            text = text[:start] + "[" + text[start:end] + "]" + text[end:]
        segment = Text(text)
    else:
        for start, end, style in spans:
            segment.stylize(f"{style} underline", start, end)
    body.append_text(segment)
    rest.append(body)
    later = [_turn_text(turn.speaker, turn.text, "dim", limit=None) for turn in after]
    code_lines: list[Text] = []
    if not shown:
        code_lines.append(Text("No suggestions. c to add a code, a to mark reviewed with no code.", style="dim"))
    width = min(CODE_WIDTH, max([len(entry.code) for entry in shown] + [8]))
    for entry in shown:
        mark, colour = MARKS[entry.verdict]
        line = Text(f"{entry.number} ", style="bold")
        line.append(mark, style=colour)
        line.append(f" {clean(entry.code):<{width}}", style=styles.get(entry.code))  # whole: a longer id wraps
        if entry.suggestion is not None:
            line.append(f" {entry.suggestion.confidence:.2f} ")
            reason = entry.suggestion.reason(item.text)
            if not entry.suggestion.says_yes:  # its rules fired; its model (or the language model) says the code does not apply
                reason = ("llm says no; " if entry.suggestion.source == "llm" else "model says no; ") + reason
            if entry.method == "batch":
                reason = "batch-accepted; " + reason
            if learning and entry.code in learning:
                reason = f"{reason}; {learning[entry.code]}"
            reason = clean(reason)
            line.append(reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…", style="dim")  # wraps, never cut at the edge
        else:
            line.append(" added by you", style="dim")
        code_lines.append(line)
    codes: list = []
    state = session.state(item)
    for note in state.notes:
        codes.append(Text(f"note: {clean(note)}", style="italic"))
    if state.reviewed:
        codes.append(Text("(reviewed)", style="green"))
    progress = session.progress()
    codes.append(Text(clean(message or ""), style="bold"))
    codes.append(
        Text(
            f"reviewed {progress.reviewed}/{progress.total} · accepted {progress.accepted} · rejected {progress.rejected} · "
            f"added {progress.added} · "
            + (f"{progress.per_minute:.1f} decisions/min" if progress.per_minute is not None else f"{progress.session_decisions} this session"),
            style="dim",
        )
    )
    codes.append(Text(FOOTER, style="reverse" if not plain else ""))
    if fit is None:
        return Group(header, *earlier, *rest, *later, Text(""), *code_lines, *codes)
    # Each part wrapped once, to the terminal's width: what is measured is what is printed.
    top, tail = _wrapped(fit, [header]), _wrapped(fit, codes)
    listed = _codes_that_fit(fit, code_lines, fit.height - 1 - len(top) - len(tail) - 1 - MIN_TEXT_LINES)
    earlier, rest, later = _fit(fit, earlier, rest, later, len(top) + 1 + len(listed) + len(tail), widen=widen)
    lines = [*top, *earlier, *rest, *later, Text(""), *listed, *tail]
    for line in lines:  # each is one screen line already: printing it need not wrap it again (half the time of a key)
        line.no_wrap = True
    return Group(*lines)


def _header(item: "ReviewItem") -> Text:
    position = clean(f"segment {item.number}/{item.of} of {item.transcript_id}")
    values = [clean(value) for key, value in sorted(item.metadata.items(), key=lambda kv: (kv[0] != "role", kv[0]))]
    room = 78 - len(item.transcript_id) - len(position) - 4
    attributes = " · ".join(values)
    if len(attributes) > room:
        attributes = attributes[: max(0, room - 1)] + "…"
    header = Text.assemble((clean(item.transcript_id), "bold"), "  ", (attributes, "dim"))
    header.append(" " * max(2, 78 - len(header.plain) - len(position)))
    header.append(position)
    return header


MIN_TEXT_LINES = 4  # of the question and answer, kept on screen however many codes there are


def _codes_that_fit(console: Console, code_lines: list[Text], room: int) -> list[Text]:
    """The code lines that fit in ``room`` lines, wrapped; when not all do, the first ones whole and a line saying how many
    more there are (a and x decide them all)."""
    wrapped = [line.wrap(console, console.width) for line in code_lines]
    if sum(len(lines) for lines in wrapped) <= max(1, room):
        return [line for lines in wrapped for line in lines]
    shown: list[Text] = []
    for count, lines in enumerate(wrapped):
        if len(shown) + len(lines) > max(1, room) - 1:
            shown.append(Text(f"… {len(code_lines) - count} more codes: a accepts and x rejects every one", style="dim italic"))
            return shown
        shown.extend(lines)
    return shown


def _wrapped(console: Console, texts: list) -> list[Text]:
    return [line for text in texts for line in text.wrap(console, console.width)]


def _fit(console: Console, earlier: list[Text], answer: list[Text], later: list[Text], fixed: int,
         *, widen: bool) -> tuple[list[Text], list[Text], list[Text]]:
    """Fit a screen to the terminal, whatever its size: the header, the codes and the footer always (``fixed`` lines, the
    codes cut to what leaves room for the text); then the start of
    the answer and the end of the question before it, shared out so that neither scrolls the other away; then more of
    each, and the turns after last. An answer cut short says how to read it whole (w: widened, it is shown whole)."""
    room = console.height - 1 - fixed  # the header, codes and footer take ``fixed`` lines; one is for the cursor
    question, body, after = _wrapped(console, earlier), _wrapped(console, answer), _wrapped(console, later)
    if len(question) + len(body) + len(after) <= room:
        return question, body, after
    if widen:  # asked for the rest of the answer: the question and the turns after make room for it
        if len(body) > max(1, room):  # longer than the screen even so: its end, the start being on the first page
            keep = max(1, room) - 1
            body = [Text(f"… {len(body) - keep} lines above: w goes back to them", style="dim italic"), *body[len(body) - keep :]]
    else:
        wanted_question = min(len(question), 3 if room >= 9 else 1)
        keep_body = max(1, min(len(body), room - wanted_question))
        if keep_body < len(body):
            cut = len(body) - keep_body + 1
            body = body[: keep_body - 1] + [Text(f"… {cut} more lines of this answer: w shows them", style="dim italic")]
    room -= len(body)
    keep_question = max(0, min(len(question), room))
    if keep_question < len(question):
        question = question[len(question) - keep_question :]
        if question:
            question[0] = Text("…", style="dim") + question[0]
    room -= len(question)
    if len(after) > max(0, room):
        keep = max(0, room - 1)
        after = after[:keep] + [Text(f"… {len(after) - keep} more lines after (w to narrow)", style="dim italic")] if room > 0 else []
    return question, body, after


def _turn_text(speaker: str | None, text: str, style: str, limit: int | None) -> Text:
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return Text(clean(f"{speaker + ': ' if speaker else ''}{text}"), style=style)


def codebook_listing(session: "ReviewSession", codes: "list[Code] | None" = None, *, rows: int | None = None) -> Text:
    """The codebook (or the codes matching what was typed), numbered as `c` takes them; in columns and cut to ``rows``
    lines when it would not fit, with a line saying how to narrow it."""
    walked = list(session.codebook.walk())
    place = {code.id: (number, depth) for number, (code, depth) in enumerate(walked, start=1)}
    listed = codes if codes is not None else [code for code, _depth in walked]
    entries = [f"{place[code.id][0]:>3} {'  ' * place[code.id][1] if codes is None else ''}{clean(code.id)}  {clean(code.label)}" for code in listed]
    text = Text()
    if rows is None or len(entries) <= rows:
        for entry in entries:
            text.append(entry + "\n")
        return text
    width = min(38, max(len(entry) for entry in entries) + 2)
    per_row = max(1, 78 // width)
    capacity = max(1, rows - 1) * per_row
    for start in range(0, min(len(entries), capacity), per_row):
        text.append("".join(f"{entry[: width - 1]:<{width}}" for entry in entries[start : start + per_row]).rstrip() + "\n")
    if len(entries) > capacity:
        text.append(f"… {len(entries) - capacity} more: type the start of an id or label to narrow the list\n", style="dim italic")
    return text


def _choose_code(session: "ReviewSession", keys: KeyReader, out: Console, interactive: bool) -> tuple[str | None, str]:
    """The `c` dialogue: list, read, narrow until one code is left. Returns (code id or None, message)."""
    candidates = None
    while True:
        rows = out.height - 3 if interactive else None
        if interactive:
            out.clear()
        out.print(codebook_listing(session, candidates, rows=rows))
        typed = keys.read_line("Code (number, or start of id or label; Enter or Esc cancels): ")
        if typed is None or not typed.strip():
            return None, "No code added."
        matches = session.find_codes(typed)
        if len(matches) == 1:
            return matches[0].id, ""
        if not matches:
            return None, f"No code matches '{clean(typed.strip())}'."
        if candidates is not None and len(matches) == len(candidates):
            return None, f"Ambiguous '{clean(typed.strip())}': {', '.join(clean(code.id) for code in matches[:12])}."
        candidates = matches


def run_review(session: "ReviewSession", keys: KeyReader, out: Console, *, plain: bool = False, interactive: bool = True,
               message: str = "", refitter: "Refitter | None" = None) -> str:
    """The review loop: draw, read one key, act; ``message`` is shown under the first screen. With ``refitter``, models
    refitted in the background are swapped in between keys. Returns why it ended ('quit', 'end of input', 'interrupted')."""
    widen = False
    show_help = False
    learning = session.learning()
    start_refit = refitter is not None and refitter.due()
    if start_refit:
        message = " ".join(part for part in (message, "Refitting the models in the background; the segments ahead will show their "
                                             "new suggestions.") if part)
    while True:
        if interactive:
            out.clear()
        else:
            from rich.rule import Rule

            out.print(Rule(style="dim"))
        out.print(render_screen(session, widen=widen, message=message, plain=plain, show_help=show_help, fit=out if interactive else None,
                                learning=learning))
        out.file.flush()  # the screen is the acknowledgement: it must not wait in a pipe's buffer
        if start_refit and refitter is not None:
            refitter.start()  # once the first screen is drawn: the fit's process does not compete with it
            start_refit = False
        session.idle()
        try:
            key = keys.read_key()
        except KeyboardInterrupt:
            return "interrupted"
        if key in ("", "\x04"):
            return "end of input"
        if key == RESIZED:
            continue  # the terminal changed size: draw again, as it is now
        if show_help:
            show_help = False
            if key != "q":
                continue  # any key leaves the help screen
        if key == "q":
            return "quit"
        message = ""
        if refitter is not None:
            refitted = _swap_models(session, refitter)
            if refitted:
                learning = session.learning()
                message = refitted
        if session.current is None:
            continue
        acted = session.current
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
            typed = keys.read_line("Note (Enter saves; Esc, Ctrl-C or an empty line cancels): ")
            if typed is None or not typed.strip():
                # A cancelled note is shown, never dropped silently: the coder can type it again.
                cancelled = keys.last_cancelled.strip() if typed is None else ""
                message = f"Note cancelled, not saved: '{cancelled}'." if cancelled else "No note written."
                continue
            result = session.note(typed)
        elif key == "c":
            chosen, message = _choose_code(session, keys, out, interactive)
            if chosen is None:
                continue
            result = session.add_code(chosen)
        elif key == "escape":
            continue
        else:
            message = f"Unknown key {key!r}. Press ? for help."
            continue
        message = " ".join(part for part in (message, result.message) if part)
        if result.moved and key in ("a", "x", "s"):
            # The outcome belongs to the segment just left, not to the one now on screen.
            message = f"Previous segment ({clean(acted.transcript_id)} {acted.number}/{acted.of}): {message}"
        if session.finished:
            message += " All segments in this queue are reviewed: u to undo, q to quit."


def _swap_models(session: "ReviewSession", refitter: "Refitter") -> str:
    """What to say when a background fit has finished: the segments ahead now show its suggestions."""
    outcome = refitter.after_action()
    if outcome is None or outcome.busy:
        return ""
    if outcome.error is not None:
        return f"Refitting the models failed ({clean(outcome.error)[:120]}); review goes on with the current ones."
    if outcome.run is None:
        return ""
    changed = session.refresh_suggestions()
    return f"Models refitted on {outcome.examples} reviewed segments; {changed} segments ahead show their new suggestions."


@app.command("review")
@user_errors
def review_cli(
    project: Path = ProjectOpt,
    coder: Optional[str] = Opt(None, "--coder", help="Your name; decisions of different coders are kept apart.", show_default="qualcode.yaml 'coder' or your user name"),
    order: Optional[str] = Opt(None, "--order", help=f"Queue order: {choices(ReviewOrder)} (uncertain: the suggestion nearest 0.5 first; active: the segments the "
                     "rules and models are least sure of across all codes first, where a decision teaches most).",
                     show_default="transcript, then active once a fifth of the segments are reviewed"),
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
    from qualcode.review.session import ReviewFilter, ReviewSession, accept_above, default_order
    from qualcode.settings import default_coder
    from qualcode.suggest.refit import Refitter

    if accept_above_threshold is not None:
        with Project.open(project) as opened:
            coder = coder or default_coder(opened.settings)
            filters = ReviewFilter(code=code, transcript=transcript, role=role, min_confidence=min_confidence, include_unsuggested=include_all,
                                   order=order or ReviewOrder.TRANSCRIPT)
            count = accept_above(opened, coder=coder, threshold=accept_above_threshold, filters=filters)
        console.print(f"Accepted {count} suggestions at or above {accept_above_threshold:g} as {escape(coder)} (batch).")
        return
    # Keys are taken over before the project opens, so that keys typed while it does are neither echoed nor lost.
    with keys_for() as keys, Project.open(project) as opened:
        coder = coder or default_coder(opened.settings)
        chosen = default_order(opened) if order is None else None
        filters = ReviewFilter(code=code, transcript=transcript, role=role, min_confidence=min_confidence, include_unsuggested=include_all,
                               order=chosen.order if chosen is not None else (order or ReviewOrder.TRANSCRIPT))
        opened.store.on_retry = lambda delay: err_console.print(
            f"[yellow]The connection to the database was lost; trying again in {delay:g} s. Nothing you saved is lost.[/]"
        )
        session = ReviewSession(opened, coder=coder, filters=filters)
        if not session.items:
            console.print("Nothing to review with these filters." + ("" if include_all else " (--all includes segments without suggestions)"))
            return
        interactive = console.is_terminal
        screen = Console(highlight=False, no_color=plain or console.no_color, force_terminal=None if interactive else False)
        # Models due a refit are refitted in a process of their own: the first screen does not wait for them.
        try:
            ended = run_review(session, keys, screen, plain=plain, interactive=interactive, refitter=Refitter(opened),
                               message=chosen.message if chosen is not None else "")
        except ProjectError as exc:
            if "cannot reach the database server" not in exc.message:
                raise
            # every retry failed: say what the last key became, not only that the server is gone
            try:
                saved = f"the {session.progress().session_decisions} decisions acknowledged before it are"
            except QualcodeError:
                saved = "every decision acknowledged before it is"
            raise ProjectError(f"{exc.message}. Review stopped: the key being saved when the connection was lost was not saved; "
                               f"{saved}", path=exc.path,
                               fix=f"{exc.fix}; then run the same review again: it resumes where you were") from None
        progress = session.progress()
        console.print(
            f"Review {ended}: {progress.session_decisions} decisions this session as {escape(coder)}; "
            f"reviewed {progress.reviewed}/{progress.total}. Everything is saved."
        )
    if ended == "interrupted":
        raise typer.Exit(130)
