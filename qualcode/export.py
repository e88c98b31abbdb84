"""Writing the project's codings and theme tables to files, each replaced atomically."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from qualcode.analysis import (
    STATUSES,
    codebook_table,
    coded_segments,
    cooccurrence,
    excerpts,
    respondent_matrix,
    theme_frequency,
)
from qualcode.codebook import Codebook
from qualcode.errors import AnalysisError, ProjectError
from qualcode.project import Project
from qualcode.store import Store
from qualcode.transcripts import UNKNOWN_ROLE

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("xlsx", "csv", "md", "qdpx")
CODINGS_COLUMNS = ["transcript", "segment", "speaker", "start", "end", "text", "code", "status", "confidence", "coder"]


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    status: str = "confirmed"
    notes: list[str] = field(default_factory=list)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside the target, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; exports are ordinary files
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def codings_rows(store: Store, *, coder: str | None = None) -> tuple[list[str], list[list[object]]]:
    """One row per segment and code: each coder's latest decision, else the pending suggestion."""
    transcripts = store.transcripts()
    attributes = sorted({key for stored in transcripts.values() for key in stored.metadata})
    suggested: dict[int, dict[str, float]] = {}
    for row in store.suggestion_rows():
        suggested.setdefault(row["segment_id"], {})[row["code"]] = row["confidence"]
    decided: dict[int, dict[str, list]] = {}
    for (segment_id, code, _coder), row in store.latest_decisions(coder).items():
        decided.setdefault(segment_id, {}).setdefault(code, []).append(row)
    rows: list[list[object]] = []
    for transcript_id, stored in transcripts.items():
        extra = [stored.metadata.get(attribute, "") for attribute in attributes]
        for number, segment in enumerate(store.coded_segments(transcript_id), start=1):
            confidences = suggested.get(segment["id"], {})
            decisions = decided.get(segment["id"], {})
            base = [transcript_id, number, segment["speaker"] or "", segment["start"], segment["end"], segment["text"]]
            for code in sorted(set(confidences) | set(decisions)):
                confidence = confidences.get(code, "")
                if code in decisions:
                    for decision in sorted(decisions[code], key=lambda row: row["coder"]):
                        rows.append(base + [code, decision["verdict"], confidence, decision["coder"]] + extra)
                else:
                    rows.append(base + [code, "suggested", confidence, ""] + extra)
    return CODINGS_COLUMNS + attributes, rows


def parse_formats(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    formats = [item.strip().lower() for item in items if item.strip()]
    if formats == ["all"]:
        return list(FORMATS)
    unknown = [item for item in formats if item not in FORMATS]
    if unknown or not formats:
        raise AnalysisError(f"unknown export format '{', '.join(unknown) or value}'", fix=f"use one or more of: {', '.join(FORMATS)}, or all")
    return formats


def parse_breakdowns(values: Iterable[str]) -> list[list[str]]:
    """'sector' -> [['sector']]; 'role,sector' -> [['role', 'sector']] (crossed)."""
    return [[part.strip() for part in value.split(",") if part.strip()] for value in values if value.strip()]


def export(
    *,
    project_dir: str | Path = ".",
    formats: str | Iterable[str] = "all",
    output_dir: str | Path | None = None,
    status: str = "confirmed",
    coder: str | None = None,
    by: Iterable[str] = (),
) -> ExportResult:
    """Write exports: themes.xlsx, CSV tables, quotes.md, project.qdpx and codebook.qdc."""
    chosen = parse_formats(formats)
    if status not in STATUSES:
        raise AnalysisError(f"unknown status '{status}'", fix=f"use one of: {', '.join(STATUSES)}")
    project = Project.open(project_dir)
    target = Path(output_dir) if output_dir is not None else project.exports_dir
    if not project.database_path.exists():
        raise ProjectError("nothing to export yet", path=project.root, fix="run 'qualcode code' first")
    codebook = project.codebook()
    breakdowns = parse_breakdowns(by)
    result = ExportResult(status=status)
    with project.store() as store:
        known = {key for stored in store.transcripts().values() for key in stored.metadata} | {"role"}
        for attributes in breakdowns:
            missing = [attribute for attribute in attributes if attribute not in known]
            if missing:
                raise AnalysisError(
                    f"no attribute '{missing[0]}' in the transcripts' metadata",
                    fix=f"use one of: {', '.join(sorted(known))}",
                )
        frame = coded_segments(store, codebook, status=status, coder=coder)
        if frame.empty and status == "confirmed":
            result.notes.append("No confirmed codings yet: the tables count nothing. Review first, or export with --status suggested.")
        tables = _tables(store, codebook, frame, breakdowns)
        if "csv" in chosen:
            header, rows = codings_rows(store, coder=coder)
            result.rows = len(rows)
            result.files.append(_write_csv(target / "codings.csv", header, rows))
            for name, table in tables.items():
                result.files.append(_write_csv(target / f"{_slug(name)}.csv", *_frame_rows(table)))
        if "xlsx" in chosen:
            path = target / "themes.xlsx"
            write_atomic(path, workbook_bytes(tables))
            result.files.append(path)
        if "md" in chosen:
            path = target / "quotes.md"
            write_atomic(path, quotes_markdown(store, codebook, frame, status=status).encode("utf-8"))
            result.files.append(path)
        if "qdpx" in chosen:
            from qualcode.qdpx import codebook_qdc, project_qdpx

            path = target / "project.qdpx"
            write_atomic(path, project_qdpx(store, codebook, name=project.root.name, coder=coder))
            result.files.append(path)
            path = target / "codebook.qdc"
            write_atomic(path, codebook_qdc(codebook))
            result.files.append(path)
    return result


def _tables(store: Store, codebook: Codebook, frame: "pd.DataFrame", breakdowns: list[list[str]]) -> dict[str, "pd.DataFrame"]:
    tables = {"Summary": theme_frequency(store, codebook, frame, by=["role"])}
    for attributes in breakdowns:
        if attributes == ["role"]:
            continue
        tables["By " + " x ".join(attributes)] = theme_frequency(store, codebook, frame, by=attributes)
    tables["Co-occurrence"] = cooccurrence(frame, codebook)
    tables["Respondents"] = respondent_matrix(store, codebook, frame)
    tables["Excerpts"] = excerpts(store, codebook, frame)
    tables["Codebook"] = codebook_table(codebook)
    return tables


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _frame_rows(table: "pd.DataFrame") -> tuple[list[str], list[list[object]]]:
    if "depth" in table.columns:  # a frequency table: the code id is the index
        table = table.drop(columns=["depth"]).reset_index()
    header = [str(column) for column in table.columns]
    rows = [[_cell(value) for value in record] for record in table.itertuples(index=False)]
    return header, rows


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if hasattr(value, "item"):  # numpy scalars to plain numbers
        return value.item()
    return value


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue().encode("utf-8"))
    return path


# -- spreadsheet -------------------------------------------------------------------------

WIDEST_COLUMN = 80


def workbook_bytes(tables: dict[str, "pd.DataFrame"]) -> bytes:
    """One sheet per table: frozen bold header, set widths, numbers as numbers, heat map on summary counts."""
    from openpyxl import Workbook
    from openpyxl.formatting.rule import ColorScaleRule
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, table in tables.items():
        sheet = workbook.create_sheet(name[:31])
        header, rows = _frame_rows(table)
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDE4EE")
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        sheet.freeze_panes = "B2" if name.startswith(("Summary", "By ", "Respondents")) else "A2"
        for index, column in enumerate(header, start=1):
            values = [len(str(column))] + [len(str(row[index - 1])) for row in rows[:500]]
            width = min(WIDEST_COLUMN, max(values) + 2)
            sheet.column_dimensions[get_column_letter(index)].width = max(8, width)
            if column == "text":
                for cell in sheet[get_column_letter(index)][1:]:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
        if name.startswith(("Summary", "By ")) and rows:
            # Heat map on the respondent counts of the code rows (row 2 is N, left plain).
            for index, column in enumerate(header, start=1):
                if column.endswith(": respondents") or column.endswith(": segments"):
                    letter = get_column_letter(index)
                    sheet.conditional_formatting.add(
                        f"{letter}3:{letter}{len(rows) + 1}",
                        ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="F8696B"),
                    )
                if column.endswith(": %"):
                    for cell in sheet[get_column_letter(index)][1:]:
                        cell.number_format = "0.0"
        code_columns = table.attrs.get("code_columns")
        if code_columns and rows:
            first = get_column_letter(header.index(code_columns[0]) + 1)
            last = get_column_letter(header.index(code_columns[-1]) + 1)
            sheet.conditional_formatting.add(
                f"{first}2:{last}{len(rows) + 1}",
                ColorScaleRule(start_type="min", start_color="FFFFFF", end_type="max", end_color="63BE7B"),
            )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# -- quotes appendix ---------------------------------------------------------------------


def quotes_markdown(store: Store, codebook: Codebook, frame: "pd.DataFrame", *, status: str) -> str:
    """Per code: its definition and its excerpts grouped by respondent type, with transcript ids."""
    from qualcode.analysis import ROLE_ORDER

    transcripts = store.transcripts()
    lines = [f"# Quotes: {codebook.name}", ""]
    lines.append(f"Codings counted: {status}. Each quote gives its transcript and segment number.")
    lines.append("")
    for code, depth in codebook.walk():
        selected = frame[frame["code"] == code.id]
        lines.append(f"{'#' * min(6, depth + 2)} {code.label} (`{code.id}`)")
        lines.append("")
        if code.description:
            lines.append(f"*Definition:* {code.description}")
            lines.append("")
        if selected.empty:
            if not code.children:
                lines.append("No coded excerpts.")
                lines.append("")
            continue
        roles: dict[str, list] = {}
        for row in selected.drop_duplicates(["segment_id"]).itertuples(index=False):
            role = transcripts[row.transcript].metadata.get("role") or UNKNOWN_ROLE
            roles.setdefault(role, []).append(row)
        ordered = [role for role in ROLE_ORDER if role in roles] + sorted(role for role in roles if role not in ROLE_ORDER)
        for role in ordered:
            rows = roles[role]
            respondents = len({row.transcript for row in rows})
            lines.append(f"**{role.capitalize()}** ({respondents} respondent{'s' if respondents != 1 else ''}, {len(rows)} excerpt{'s' if len(rows) != 1 else ''})")
            lines.append("")
            for row in rows:
                text = " ".join(row.text.split())
                lines.append(f"> {text}")
                lines.append(f"> — {row.transcript}, segment {row.segment}")
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"
