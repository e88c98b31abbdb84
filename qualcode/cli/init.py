"""qualcode init: start a study of your own."""

from __future__ import annotations

from pathlib import Path

from qualcode.cli._common import Arg, app, console, escape, user_errors


@app.command("init")
@user_errors
def init_cli(folder: Path = Arg(Path("."), help="The new project's folder (created if needed).", show_default="the current folder")) -> None:
    """Start a project: a commented codebook.yaml and qualcode.yaml, transcripts/ with a metadata.csv, exports/.

    Files already there are kept. Then it says what to do next.

    Example: qualcode init my-study
    """
    from qualcode.project.starter import init

    started = init(folder)
    for path in started.written:
        console.print(f"Wrote {escape(str(path))}")
    for path in started.kept:
        console.print(f"Kept {escape(str(path))} (already there)")
    console.print(f"\nNext, in {escape(str(started.folder))}:")
    for number, step in enumerate(started.next_steps, start=1):
        console.print(f"  {number}. {escape(step)}")
