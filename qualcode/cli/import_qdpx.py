"""qualcode import-qdpx: create a project from a REFI-QDA project made by another tool."""

from __future__ import annotations

from pathlib import Path

from qualcode.cli._common import Arg, ProjectOpt, app, console, escape, user_errors, warn


@app.command("import-qdpx")
@user_errors
def import_qdpx_cli(
    file: Path = Arg(..., help="The .qdpx file (from NVivo, ATLAS.ti, MAXQDA, QualCoder, qc, ...)."),
    project: Path = ProjectOpt,
) -> None:
    """Create a project (codebook, transcripts, coders' decisions) from a REFI-QDA .qdpx file.

    Coded selections become 'added' decisions on the segments they overlap.

    Example: qualcode import-qdpx study.qdpx --project imported-study
    """
    from qualcode.exchange.qdpx_import import import_qdpx

    result = import_qdpx(path=file, project_dir=project)
    for message in result.warnings:
        warn(message)
    console.print(
        f"Imported {escape(str(file))} ({escape(result.origin or 'unknown tool')}) into {escape(str(result.project))}: "
        f"{result.codes} codes, {result.sources} text sources, {result.selections} coded selections "
        f"({result.placed} placed on segments, {result.unplaced} not placed), {result.decisions} decisions by "
        f"{', '.join(result.coders) or 'nobody'}."
    )
    if result.restored:
        console.print(f"Restored from the qualcode export: {', '.join(result.restored)} (the rules, settings and every standing "
                      "decision, rejections and segments reviewed with no code included).")
