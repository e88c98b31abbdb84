"""qualcode train, agreement and evaluate: learning from decisions, and measuring how good codings are."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from qualcode.cli._common import Arg, Opt, ProjectOpt, app, console, user_errors, warn
from qualcode.evaluation import AgreementReport, agreement, evaluate, report_rows
from qualcode.export import write_atomic
from qualcode.project import train

UNIT_RULE = (
    "Units are segments: two sources agree on a segment and code when both apply the code or both do not. "
    "Only segments both sources cover count (a coder covers the segments they reviewed; the machine every "
    "respondent segment; a gold file every respondent segment of the transcripts it names). Gold selections "
    "map onto the segments they overlap."
)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_agreement(report: AgreementReport, *, title: str) -> Table:
    a, b = report.sources[0], report.sources[1]
    table = Table(title=title, title_justify="left", caption=f"{report.units} segments in common. P/R/F1: {b} scored against {a}.")
    for name, justify in (("Code", "left"), ("kappa", "right"), ("agree %", "right"), ("P", "right"), ("R", "right"), ("F1", "right"), ("both", "right"), ("A only", "right"), ("B only", "right")):
        table.add_column(name, justify=justify, no_wrap=name == "Code")
    if len(report.sources) > 2:
        table.add_column("alpha", justify="right")
    for row in [*report.codes, report.overall]:
        cells = [row.code, _fmt(row.kappa), f"{row.percent:.1f}", _fmt(row.precision), _fmt(row.recall), _fmt(row.f1), str(row.both), str(row.only_a), str(row.only_b)]
        if len(report.sources) > 2:
            cells.append(_fmt(row.alpha))
        table.add_row(*cells, style="bold" if row is report.overall else None, end_section=row is report.codes[-1] if report.codes else False)
    return table


@app.command("agreement")
@user_errors
def agreement_cli(
    sources: List[str] = Arg(..., help="Two or more of: coder:NAME, machine, gold:FILE (CSV or .qdpx)."),
    project: Path = ProjectOpt,
    min_confidence: float = Opt(0.0, "--min-confidence", min=0.0, max=1.0, help="For 'machine': only suggestions at or above this."),
    disagreements: bool = Opt(False, "--disagreements", help="List the segments where the sources differ, with their text."),
    format: str = Opt("table", "--format", help="table, or csv (written to --output or standard output)."),
    output: Optional[Path] = Opt(None, "--output", "-o", help="File for --format csv."),
) -> None:
    """Agreement between coders, the machine and gold files: kappa, % agreement, P/R/F1 per code; Krippendorff's alpha for 3+.

    Units are segments: two sources agree on a segment and code when both apply it or both do not;
    only segments both sources cover count; gold selections map onto the segments they overlap.

    Example: qualcode agreement coder:ann coder:bob --disagreements
    """
    report = agreement(project_dir=project, sources=sources, min_confidence=min_confidence)
    for message in report.warnings:
        warn(message)
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if disagreements:
            writer.writerow(["transcript", "segment", "code", *report.sources, "evidence", "text"])
            for item in report.disagreements:
                writer.writerow([item.transcript, item.segment, item.code, *[int(item.values[s]) for s in report.sources], item.evidence, item.text])
        else:
            header, rows = report_rows(report)
            writer.writerow(header)
            writer.writerows(rows)
        if output:
            write_atomic(output, buffer.getvalue().encode("utf-8"))
            console.print(f"Wrote {escape(str(output))}")
        else:
            typer.echo(buffer.getvalue(), nl=False)
        return
    if format != "table":
        raise typer.BadParameter("use table or csv", param_hint="--format")
    console.print(render_agreement(report, title=f"Agreement: {' vs '.join(report.sources)}"))
    console.print(
        f"Overall kappa {_fmt(report.overall.kappa)} (pooled), mean per-code kappa {_fmt(report.macro_kappa)}, "
        f"macro-F1 {_fmt(report.macro_f1)}" + (f", Krippendorff's alpha {_fmt(report.alpha)}" if report.alpha is not None else "") + "."
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
    result = evaluate(project_dir=project, gold=gold, min_confidence=min_confidence, top=top)
    report = result.agreement
    for message in report.warnings:
        warn(message)
    console.print(render_agreement(report, title=f"Suggestions against {report.sources[0]}"))
    console.print(f"Mean per-code kappa {_fmt(report.macro_kappa)}, macro-F1 {_fmt(report.macro_f1)}.")
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
    result = train(project_dir=project, seed=seed)
    table = Table(title=f"Models from {result.examples} reviewed segments", title_justify="left")
    for name in ("Code", "yes", "no", "CV F1", "CV kappa"):
        table.add_column(name, justify="left" if name == "Code" else "right")
    for code, info in result.models.items():
        table.add_row(code, str(info["positives"]), str(info["negatives"]), _fmt(info["cv_f1"]), _fmt(info["cv_kappa"]))
    for code, info in result.rules_better.items():
        table.add_row(code, "", "", f"rules kept: kappa {info['rules_kappa']:.2f}", f"model {info['model_cv_kappa']:.2f}", style="dim")
    for code, info in result.too_few.items():
        table.add_row(code, str(info["positives"]), str(info["negatives"]), "rules only", "", style="dim")
    console.print(table)
    if result.run is None:
        console.print("No code has enough examples yet: suggestions stay rule-based.")
    else:
        console.print(f"Model run {result.run} saved in {result.seconds:.1f} s; {result.rescored} undecided segments re-scored.")
