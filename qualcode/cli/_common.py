"""Shared pieces of the CLI: the typer app, option aliases, consoles and error handling."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape as escape_markup

from qualcode.database_url import has_password
from qualcode.errors import QualcodeError

if TYPE_CHECKING:
    from rich.table import Table

    from qualcode.analysis.status import ModelRow

# What must never reach a terminal from a file name, metadata value, codebook label or transcript: C0 controls
# (ESC starts an escape sequence), DEL, C1 controls (U+0080-U+009F; some terminals act on them) and the
# bidirectional overrides and isolates that make text read differently from what it is ("Trojan source").
_UNSAFE = {
    **{code: "\ufffd" for code in range(0x20) if chr(code) not in "\n\t"},
    0x7F: "\ufffd",
    **{code: "\ufffd" for code in range(0x80, 0xA0)},
    **{code: "\ufffd" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}


def clean(text: object) -> str:
    """Text safe for a terminal: each unsafe character becomes one U+FFFD, so offsets into it still hold."""
    return str(text).translate(_UNSAFE)


def escape(text: object) -> str:
    """Text for rich markup: cleaned of terminal controls, its [brackets] shown as written."""
    return escape_markup(clean(text))


Arg = typer.Argument
Opt = typer.Option

app = typer.Typer(
    name="qualcode",
    help=(
        "Deductive coding of interview transcripts: spaCy code suggestions from a YAML codebook, "
        "human review in the terminal, theme tables by respondent type.\n\n"
        "Example: qualcode code --project my-study"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[brackets]" must show as written
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _show_version(value: bool) -> None:
    if value:
        from qualcode import __version__

        typer.echo(f"qualcode {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Show qualcode's version and exit."),
) -> None:
    """Deductive coding of interview transcripts: spaCy code suggestions from a YAML codebook,
    human review in the terminal, theme tables by respondent type.

    Example: qualcode code --project my-study
    """
    url = os.environ.get("QUALCODE_DATABASE_URL", "")
    if url and has_password(url):
        warn("QUALCODE_DATABASE_URL holds a password, which other users of this machine may see in its process list; "
             "libpq reads it from ~/.pgpass or PGPASSWORD instead")


PROJECT_HELP = "Project folder (holds codebook.yaml and transcripts/)."
ProjectOpt = Opt(Path("."), "--project", "-p", help=PROJECT_HELP, show_default="current folder")


def _no_colour() -> bool:
    return bool(os.environ.get("NO_COLOR"))


for _stream in (sys.stdout, sys.stderr):  # a terminal or pipe that takes only ASCII: '≈' and '…' become '?', not a traceback
    if hasattr(_stream, "reconfigure"):
        _stream.reconfigure(errors="replace")
console = Console(highlight=False, no_color=_no_colour(), soft_wrap=False)
err_console = Console(stderr=True, highlight=False, no_color=_no_colour(), soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a QualcodeError into one clear message and a non-zero exit, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except QualcodeError as exc:
            err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a full disk, a read-only folder, ... anywhere a service did not name it itself
            from qualcode.errors import os_error

            err_console.print(f"[bold red]Error:[/] {escape(str(os_error(exc)))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("Interrupted.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def warn(message: str) -> None:
    err_console.print(f"[yellow]Warning:[/] {escape(message)}")


def is_interactive() -> bool:
    return sys.stderr.isatty()


def fmt_number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"




def render_models(title: str, rows: "list[ModelRow]") -> "Table":
    """The codes of one model run: examples, honest cross-validated kappa of the model and of the code's rules on the
    same reviewed segments, what suggests the code now, and what more review would bring."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("Code", "yes", "no", "model κ", "rules κ", "suggests", "outlook"):
        table.add_column(name, justify="left" if name in ("Code", "suggests", "outlook") else "right")
    for row in rows:
        table.add_row(escape(row.code), str(row.positives) if row.positives or row.negatives else "", str(row.negatives) if row.positives or row.negatives else "",
                      fmt_number(row.model_kappa) if not row.too_few else "", fmt_number(row.rules_kappa) if row.rules_kappa is not None else "",
                      str(row.speaker), model_outlook(row), style=None if row.speaker == "model" else "dim")
    if rows:
        table.caption = ("κ: honest cross-validated kappa on the reviewed segments. A model suggests a code once it reaches 0.20 and beats the "
                         "code's rules by more than the margin shown; otherwise the rules (or coders alone) go on.")
        table.caption_justify = "left"
    return table


def model_outlook(row: "ModelRow") -> str:
    """What more review would bring a code, in words: never read beyond the project's own size."""
    if row.too_few:
        return f"learning: {row.needed} more examples needed" if row.needed else "learning: more examples needed"
    if row.speaker != "model":
        if row.learning:
            return f"learning: ≈{row.needed:,} more examples needed" if row.needed else "learning: not enough examples to say how many more"
        return f"rules kept: model within ±{row.margin:.2f} of them" if row.margin else "rules kept"
    if row.level is None:
        return "not enough examples to say"
    if not row.more:
        return f"levels off near {row.level:.2f}; more review will add little"
    return f"≈{row.more:,} more reviewed segments to come near {row.level:.2f}"
