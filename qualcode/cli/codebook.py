"""qualcode codebook: show the codebook as a tree, or only check it."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.tree import Tree

from qualcode.cli._common import Opt, ProjectOpt, app, console, user_errors
from qualcode.codebook import Code, Codebook
from qualcode.project import Project


@app.command("codebook")
@user_errors
def codebook_cli(
    project: Path = ProjectOpt,
    check: bool = Opt(False, "--check", help="Only validate the codebook; print nothing but errors and a one-line result."),
    terms: bool = Opt(False, "--terms", "-t", help="Also list each code's keywords, phrases and patterns."),
) -> None:
    """Show the codebook as a tree, or validate it with --check.

    Example: qualcode codebook --check --project my-study
    """
    codebook = Project.open(project).codebook()
    _check_patterns(codebook, project)
    if check:
        leaves = sum(1 for code in codebook.codes.values() if not code.children)
        console.print(f"{codebook.path.name}: OK, {len(codebook)} codes ({leaves} without children)")
        return
    console.print(render_tree(codebook, terms=terms))


def _check_patterns(codebook: Codebook, project: Path) -> None:
    """Token patterns are only validated by spaCy's Matcher, so build the matcher."""
    if any(code.patterns for code in codebook.codes.values()):
        from qualcode.pipeline import build_pipeline

        settings = Project.open(project).settings
        build_pipeline(codebook, pipeline_name=settings.pipeline, language=settings.language)


def _code_label(code: Code, terms: bool) -> str:
    text = f"[bold]{escape(code.id)}[/]  {escape(code.label)}"
    if code.manual:
        text += " [dim](manual)[/]"
    if code.description:
        text += f"\n[dim]{escape(code.description)}[/]"
    if terms:
        for name, values in (("keywords", code.keywords), ("phrases", code.phrases)):
            if values:
                text += f"\n[cyan]{name}:[/] {escape(', '.join(values))}"
        if code.patterns:
            text += f"\n[cyan]patterns:[/] {len(code.patterns)}"
    return text


def render_tree(codebook: Codebook, *, terms: bool = False) -> Tree:
    tree = Tree(f"[bold]{escape(codebook.name)}[/] ({len(codebook)} codes)")
    branches = {}
    for code, _depth in codebook.walk():
        parent = branches[code.parent] if code.parent else tree
        branches[code.id] = parent.add(_code_label(code, terms))
    return tree
