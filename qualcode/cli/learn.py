"""qualcode train, agreement and evaluate: learning from decisions, and measuring how good codings are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from qualcode.cli._common import Arg, Opt, ProjectOpt, app, console, escape, fmt_number, render_models, user_errors, warn

if TYPE_CHECKING:
    from rich.table import Table

    from qualcode.analysis.evaluation import AgreementReport


def render_agreement(report: "AgreementReport", *, title: str) -> "Table":
    from rich.table import Table

    a, b = report.sources[0], report.sources[1]
    table = Table(title=title, title_justify="left", caption=f"{report.units} segments in common. P/R/F1: {b} scored against {a}.")
    # Numbers are never cut ("0.…" at 80 columns with three sources): the code names wrap instead.
    table.add_column("Code", justify="left", overflow="fold", min_width=8)
    for name in ("kappa", "agree %", "P", "R", "F1", "both", "A only", "B only", *(("alpha",) if len(report.sources) > 2 else ())):
        table.add_column(name, justify="right", no_wrap=True, min_width=max(5 if name in ("kappa", "alpha") else 4, len(name)))
    for row in [*report.codes, report.overall]:
        cells = [row.code, fmt_number(row.kappa), f"{row.percent:.1f}", fmt_number(row.precision), fmt_number(row.recall), fmt_number(row.f1), str(row.both), str(row.only_a), str(row.only_b)]
        if len(report.sources) > 2:
            cells.append(fmt_number(row.alpha))
        table.add_row(*cells, style="bold" if row is report.overall else None, end_section=row is report.codes[-1] if report.codes else False)
    return table


@app.command("agreement")
@user_errors
def agreement_cli(
    sources: List[str] = Arg(..., help="Two or more of: coder:NAME, machine, llm (the language model's own answers), gold:FILE (CSV or .qdpx)."),
    project: Path = ProjectOpt,
    min_confidence: float = Opt(0.0, "--min-confidence", min=0.0, max=1.0, help="For 'machine': only suggestions at or above this."),
    disagreements: bool = Opt(False, "--disagreements", help="List the segments where the sources differ, with their text."),
    format: str = Opt("table", "--format", help="table, or csv (written to --output or standard output)."),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Write the report to this CSV file (implies --format csv)."),
) -> None:
    """Agreement between coders, the machine and gold files: kappa, % agreement, P/R/F1 per code; Krippendorff's alpha for 3+.

    Units are segments: two sources agree on a segment and code when both apply it or both do not;
    only segments both sources cover count; gold selections map onto the segments they overlap.

    Example: qualcode agreement coder:ann coder:bob --disagreements
    """
    from qualcode.analysis.evaluation import agreement, disagreement_rows, report_rows
    from qualcode.exchange.export import csv_bytes, write_atomic
    from qualcode.project import Project

    with Project.open(project, read_only=True) as opened:
        given = {}
        if "llm" in sources:
            from qualcode.suggest.llm import llm_source

            given["llm"] = llm_source(opened)
        report = agreement(opened, sources=sources, min_confidence=min_confidence, given=given)
        guard = opened.settings.csv_formula_guard
    for message in report.warnings:
        warn(message)
    if format == "csv" or output:  # a file asked for is written, whatever --format says: a table is for the screen
        data = csv_bytes(*(disagreement_rows(report) if disagreements else report_rows(report)), guard=guard)
        if output:
            existed = output.exists()
            write_atomic(output, data)
            console.print(f"{'Replaced' if existed else 'Wrote'} {escape(str(output))}")
        else:
            typer.echo(data.decode("utf-8"), nl=False)
        return
    if format != "table":
        raise typer.BadParameter("use table or csv", param_hint="--format")
    console.print(render_agreement(report, title=f"Agreement: {' vs '.join(report.sources)}"))
    console.print(
        f"Overall kappa {fmt_number(report.overall.kappa)} (pooled), mean per-code kappa {fmt_number(report.macro_kappa)}, "
        f"macro-F1 {fmt_number(report.macro_f1)}" + (f", Krippendorff's alpha {fmt_number(report.alpha)}" if report.alpha is not None else "") + "."
    )
    if disagreements:
        for item in report.disagreements:
            who = ", ".join(f"{name}={'yes' if value else 'no'}" for name, value in item.values.items())
            console.print(f"\n[bold]{escape(item.transcript)} segment {item.segment}[/] · {escape(item.code)} · {escape(who)}")
            if item.evidence:
                console.print(f"[dim]{escape(item.evidence)}[/]")
            console.print(escape(item.text))


@app.command("evaluate")
@user_errors
def evaluate_cli(
    gold: Path = Arg(..., help="Gold codings: CSV (transcript,start,end,code or transcript,text,code) or .qdpx."),
    project: Path = ProjectOpt,
    min_confidence: float = Opt(0.0, "--min-confidence", min=0.0, max=1.0, help="Count only suggestions at or above this."),
    top: int = Opt(3, "--top", min=0, help="False positives and negatives to show per code."),
) -> None:
    """Score the current suggestions against a gold file: per code P, R, F1, kappa, and the worst misses with their evidence.

    Edit codebook.yaml, run 'qualcode code' (it re-suggests), and evaluate again.

    Example: qualcode evaluate gold.csv --top 5
    """
    from qualcode.analysis.evaluation import evaluate
    from qualcode.project import Project

    with Project.open(project, read_only=True) as opened:
        result = evaluate(opened, gold=gold, min_confidence=min_confidence, top=top)
    report = result.agreement
    for message in report.warnings:
        warn(message)
    console.print(render_agreement(report, title=f"Suggestions against {report.sources[0]}"))
    console.print(f"Mean per-code kappa {fmt_number(report.macro_kappa)}, macro-F1 {fmt_number(report.macro_f1)}.")
    for code in [row.code for row in report.codes]:
        for label, items in (("false positive", result.false_positives.get(code, [])), ("false negative", result.false_negatives.get(code, []))):
            for item in items:
                text = " ".join(item.text.split())
                console.print(f"\n[bold]{escape(code)}[/] {label}: {escape(item.transcript)} segment {item.segment}")
                if item.evidence:
                    console.print(f"  [dim]fired: {escape(item.evidence)}[/]")
                console.print(f"  {escape(text[:300] + ('…' if len(text) > 300 else ''))}")


@app.command("train")
@user_errors
def train_cli(
    project: Path = ProjectOpt,
    seed: int = Opt(0, "--seed", help="Random seed; the same decisions and seed give the same models."),
) -> None:
    """Fit a model per code on the review decisions, then re-score segments nobody has decided on.

    Codes need enough accepted and rejected examples (learn_min_examples in qualcode.yaml, default 5 each).

    Example: qualcode train --project my-study
    """
    from qualcode.analysis.status import model_rows
    from qualcode.project import Project
    from qualcode.suggest.training import train

    with Project.open(project) as opened:
        result = train(opened, seed=seed)
        rows = model_rows(result.summary, [code.id for code in opened.codebook.suggestible()])
    console.print(render_models(f"Models from {result.examples} reviewed segments", rows))
    if result.run is None:
        console.print("No code has enough examples yet: suggestions stay rule-based.")
    else:
        console.print(f"Model run {result.run} saved in {result.seconds:.1f} s; {result.rescored} undecided segments re-scored.")

