"""qualcode codebook: show the codebook as a tree, or only check it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from qualcode.cli._common import Opt, ProjectOpt, app, console, escape, user_errors

if TYPE_CHECKING:
    from rich.tree import Tree

    from qualcode.codebook import Code, Codebook


@app.command("codebook")
@user_errors
def codebook_cli(
    project: Path = ProjectOpt,
    check: bool = Opt(False, "--check", help="Only validate the codebook; print nothing but errors and a one-line result."),
    terms: bool = Opt(False, "--terms", "-t", help="Also list each code's keywords, phrases and patterns."),
    import_file: Path | None = Opt(None, "--import", help="Write codebook.yaml from a REFI-QDA codebook (.qdc) made by another tool.",
                                   metavar="FILE.qdc"),
    add: Path | None = Opt(None, "--add", help="Add the codes of a codebook fragment (e.g. exports/candidates.yaml from 'qualcode "
                                               "discover') to the end of codebook.yaml, keeping its comments and order.", metavar="FILE.yaml"),
    only: str | None = Opt(None, "--only", help="With --add: only these codes, by their numbers in the file (e.g. 3,5)."),
) -> None:
    """Show the codebook as a tree, validate it with --check, start one from another tool's with --import, or add
    candidate codes with --add.

    Example: qualcode codebook --check --project my-study
    """
    if only is not None and add is None:
        raise typer.BadParameter("--only goes with --add", param_hint="--only")
    if add is not None:
        from qualcode.exchange.candidates import add_codes
        from qualcode.project import Project

        try:
            numbers = [int(part) for part in only.replace(" ", "").split(",") if part] if only is not None else None
        except ValueError:
            raise typer.BadParameter("numbers separated by commas, e.g. 3,5", param_hint="--only") from None
        with Project.open(project) as opened:
            added = add_codes(opened, add, only=numbers)
        console.print(f"Added {len(added.codes)} codes to {escape(added.path.name)}: {escape(', '.join(added.codes))}. Give each a "
                      "description, then run 'qualcode code' to suggest them.")
        return
    if import_file is not None:
        from qualcode.exchange.qdpx_import import import_codebook

        written, count, warnings = import_codebook(path=import_file, project_dir=project)
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}")
        console.print(f"Wrote {escape(str(written))}: {count} codes from {escape(import_file.name)}, each 'manual' (applied by hand) "
                      "until you give it keywords or phrases.")
        return
    from qualcode.project import Project

    with Project.open(project) as opened:
        codebook = opened.codebook
        if check:  # token patterns can only be checked by building spaCy's Matcher, which a tree does not need
            from qualcode.suggest.pipeline import validate_codebook

            validate_codebook(codebook, opened.settings)
    if check:
        leaves = sum(1 for code in codebook.codes.values() if not code.children)
        console.print(f"{codebook.path.name}: OK, {len(codebook)} codes ({leaves} without children)")
        return
    console.print(render_tree(codebook, terms=terms))


def _code_label(code: "Code", terms: bool) -> str:
    text = f"[bold]{escape(code.id)}[/]  {escape(code.label)}"
    if code.manual:
        text += " [dim](manual)[/]"
    if code.description:
        text += f"\n[dim]{escape(code.description)}[/]"
    if terms:
        for name, values in (("keywords", code.keywords), ("phrases", code.phrases), ("exact", code.exact)):
            if values:
                text += f"\n[cyan]{name}:[/] {escape(', '.join(values))}"
        if code.patterns:
            text += f"\n[cyan]patterns:[/] {len(code.patterns)}"
    return text


def render_tree(codebook: "Codebook", *, terms: bool = False) -> "Tree":
    from rich.tree import Tree

    tree = Tree(f"[bold]{escape(codebook.name)}[/] ({len(codebook)} codes)")
    branches: dict[str, Tree] = {}
    for code, _depth in codebook.walk():
        parent = branches[code.parent] if code.parent else tree
        branches[code.id] = parent.add(_code_label(code, terms))
    return tree
