"""Writing the project's codings and theme tables to files, each replaced atomically."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

from qualcode.analysis.counts import (
    Coding,
    GroupOrders,
    Table,
    attribute_headers,
    attribute_names,
    check_attributes,
    check_status,
    codebook_table,
    codings,
    cooccurrence,
    excerpts,
    memos,
    parse_breakdowns,
    respondent_matrix,
    taguette_codebook,
    theme_frequency,
)
from qualcode.codebook import Codebook
from qualcode.errors import AnalysisError, ProjectError, os_error
from qualcode.exchange.qdpx_export import codebook_qdc, decisions_json, project_qdpx
from qualcode.exchange.quotes import quotes_markdown
from qualcode.exchange.spreadsheet import workbook_bytes
from qualcode.leftovers import sweep, temporary_path
from qualcode.project import Project
from qualcode.store import Store
from qualcode.vocabulary import ExportFormat, Status, choices, locale_paper

CODINGS_COLUMNS = ["transcript", "segment", "speaker", "start", "end", "text", "code", "status", "confidence", "coder", "memo"]


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    status: str = Status.CONFIRMED
    notes: list[str] = field(default_factory=list)


def write_atomic(path: Path, data: bytes | Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside the target, then rename over it. ``data`` is the bytes, or a function that
    writes them to the file as it goes (a large table is never held whole). A full disk or a read-only folder ends in
    one located message, the old file untouched and no temporary file left."""
    temporary = None
    try:
        _replaceable(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep(path.parent)  # what a killed export left here
        temporary = str(temporary_path(path))
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)  # umask applies
        with os.fdopen(handle, "wb") as out:
            if callable(data):
                data(out)
            else:
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise os_error(exc, path if exc.filename in (None, temporary) else None) from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def _replaceable(path: Path) -> None:
    """Refuse to write over what is not an ordinary file: a FIFO would hang or be swapped for a file, a link would be
    replaced rather than written through, a folder or a device cannot be."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise os_error(exc, path) from None
    if not stat.S_ISREG(mode):
        kind = "a link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else "a pipe or device, not a file"
        raise ProjectError(f"there is {kind} at this path, and qualcode writes only ordinary files", path=path,
                           fix="name a new file, or remove what is there first")


def codings_rows(store: Store, *, coder: str | None = None) -> tuple[list[str], Iterator[list[object]]]:
    """One row per segment and code: each coder's latest decision, else the pending suggestion (rows made as they are read)."""
    transcripts = store.transcripts()
    attributes = attribute_names(store)
    return CODINGS_COLUMNS + attribute_headers(attributes, CODINGS_COLUMNS), _codings_rows(store, transcripts, attributes, coder)


def _codings_rows(store: Store, transcripts: dict, attributes: list[str], coder: str | None) -> Iterator[list[object]]:
    notes = memos(store, coder)  # every coder's, for a suggestion's row, which has no coder
    own_notes: dict[tuple[int, str], list[str]] = {}
    for note in store.notes(coder):
        own_notes.setdefault((note.segment_id, note.coder), []).append(f"{note.coder}: {' '.join(note.text.split())}")
    decided: dict[int, dict[str, list]] = {}
    for (segment_id, code, _coder), decision in store.latest_decisions(coder).items():
        decided.setdefault(segment_id, {}).setdefault(code, []).append(decision)
    for transcript_id, stored_transcript in transcripts.items():
        suggested: dict[int, dict[str, float]] = {}
        for segment_id, code, value in store.confidences(transcript_id):
            suggested.setdefault(segment_id, {})[code] = value
        extra = [stored_transcript.metadata.get(attribute, "") for attribute in attributes]
        for number, segment in enumerate(store.codable_segments(transcript_id), start=1):
            confidences = suggested.get(segment.id, {})
            decisions = decided.get(segment.id, {})
            base: list[object] = [transcript_id, number, segment.speaker or "", segment.start, segment.end, segment.text]
            memo = notes.get(segment.id, "")
            for code in sorted(set(confidences) | set(decisions)):
                confidence: object = confidences.get(code, "")
                if code in decisions:
                    for decision in sorted(decisions[code], key=lambda row: row.coder):  # a coder's row: that coder's memo only
                        mine = " | ".join(own_notes.get((segment.id, decision.coder), []))
                        yield base + [code, decision.verdict, confidence, decision.coder, mine] + extra
                else:
                    yield base + [code, Status.SUGGESTED.value, confidence, "", memo] + extra


def parse_formats(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    formats = [item.strip().lower() for item in items if item.strip()]
    if formats == ["all"]:
        return [member.value for member in ExportFormat]
    unknown = [item for item in formats if item not in set(ExportFormat)]
    if unknown or not formats:
        raise AnalysisError(f"unknown export format '{', '.join(unknown) or value}'", fix=f"use one or more of: {choices(ExportFormat)}, or all")
    return formats


def export(
    project: Project,
    *,
    formats: str | Iterable[str] = "all",
    output_dir: str | Path | None = None,
    status: str = Status.CONFIRMED,
    coder: str | None = None,
    by: Iterable[str] = (),
) -> ExportResult:
    """Write exports: themes.xlsx, CSV tables, quotes.md, project.qdpx and codebook.qdc."""
    chosen = parse_formats(formats)
    check_status(status)
    if output_dir is not None:
        target = Path(output_dir)  # asked for explicitly: anywhere the user may write
    else:
        target = project.exports_dir
        if not target.resolve().is_relative_to(project.root.resolve()):
            # A shared qualcode.yaml must not make exports land outside the project unnoticed.
            raise AnalysisError(f"'exports: {project.settings.exports}' in qualcode.yaml points outside the project ({target.resolve()})",
                                fix=f"to write there, say so: qualcode export --output {target}; or set 'exports:' to a folder inside the project")
    store = project.existing_store(missing="nothing to export yet")
    with store.snapshot():  # every file from one state of the database, while others code or review
        return _export(project, store, chosen, target, status=status, coder=coder, by=by)


def _export(project: Project, store: Store, chosen: list[str], target: Path, *, status: str, coder: str | None, by: Iterable[str]) -> ExportResult:
    codebook = project.codebook
    orders = dict(project.settings.groups)
    breakdowns = parse_breakdowns(by)
    result = ExportResult(status=status)
    check_attributes(store, breakdowns)
    found = codings(store, codebook, status=status, coder=coder)
    if not found and status == Status.CONFIRMED:
        result.notes.append("No confirmed codings yet: the tables count nothing. Review first, or export with --status suggested.")
    tables = _tables(store, codebook, found, breakdowns, orders)
    result.notes.extend(note for table in tables.values() if (note := table.attrs.get("note")))
    if ExportFormat.CSV in chosen:
        guard = project.settings.csv_formula_guard
        header, rows = codings_rows(store, coder=coder)
        result.rows = _write_csv(target / "codings.csv", header, rows, guard=guard)
        result.files.append(target / "codings.csv")
        for name, table in tables.items():
            _write_csv(target / f"{_slug(name)}.csv", table.columns, table.rows, guard=guard)
            result.files.append(target / f"{_slug(name)}.csv")
        taguette = taguette_codebook(codebook)
        _write_csv(target / "codebook-taguette.csv", taguette.columns, taguette.rows, guard=guard)
        result.files.append(target / "codebook-taguette.csv")
    if ExportFormat.XLSX in chosen:
        path = target / "themes.xlsx"
        paper = project.settings.paper or locale_paper(dict(os.environ))
        write_atomic(path, workbook_bytes(tables, result.notes, paper=paper))
        result.files.append(path)
    if ExportFormat.MD in chosen:
        path = target / "quotes.md"
        write_atomic(path, quotes_markdown(store, codebook, found, status=status, orders=orders).encode("utf-8"))
        result.files.append(path)
    if ExportFormat.QDPX in chosen:
        path = target / "project.qdpx"
        write_atomic(path, project_qdpx(store, codebook, name=project.root.name, coder=coder, extras=qdpx_extras(project, store),
                                        kept=kept_guids(store)))
        result.files.append(path)
        path = target / "codebook.qdc"
        write_atomic(path, codebook_qdc(codebook))
        result.files.append(path)
    return result


GUIDS_META = "refiqda_guids"  # GUIDs another tool gave this project's sources and users, kept on import


def kept_guids(store: Store) -> dict[str, str]:
    import json

    raw = store.get_meta(GUIDS_META)
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(key): str(item) for key, item in value.items()} if isinstance(value, dict) else {}


def qdpx_extras(project: Project, store: Store) -> dict[str, bytes]:
    """What a .qdpx carries for qualcode beside the standard's own: codebook.yaml as written, qualcode.yaml without the
    database (it names this team's server), and the standing decisions."""
    from qualcode.settings import SETTINGS_FILE

    extras = {"codebook.yaml": project.codebook.text.encode("utf-8"), "decisions.json": decisions_json(store)}
    settings = project.root / SETTINGS_FILE
    if settings.is_file():
        lines = settings.read_text(encoding="utf-8-sig").splitlines()
        kept = [line for line in lines if not line.startswith("database:")]
        extras["qualcode.yaml"] = ("\n".join(kept) + "\n").encode("utf-8")
    return extras


def _tables(store: Store, codebook: Codebook, found: Sequence[Coding], breakdowns: list[list[str]], orders: GroupOrders) -> dict[str, Table]:
    tables = {"Summary": theme_frequency(store, codebook, found, by=["role"], orders=orders)}
    for attributes in breakdowns:
        if attributes == ["role"]:
            continue
        tables["By " + " x ".join(attributes)] = theme_frequency(store, codebook, found, by=attributes, orders=orders)
    tables["Co-occurrence"] = cooccurrence(found, codebook)
    tables["Respondents"] = respondent_matrix(store, codebook, found)
    tables["Excerpts"] = excerpts(store, codebook, found)
    tables["Codebook"] = codebook_table(codebook)
    return tables


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, guard: bool = True) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralise(value) for value in header] if guard else header)
    writer.writerows(_guarded(rows) if guard else rows)  # None: an empty cell
    return buffer.getvalue().encode("utf-8")


FORMULA_SIGNS = ("=", "+", "-", "@")
FORMULA_STARTS = (*FORMULA_SIGNS, "\t", "\r")
_RISKY_FIRST = frozenset("=+-@\t\r\n ")  # a cell starting otherwise cannot be a formula: most are passed by at once


def neutralise(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, with an apostrophe first so that it shows as text
    (OWASP's advice for CSV injection); leading spaces do not hide a formula from a spreadsheet, so they do not here."""
    if value.__class__ is str and value and value[0] in _RISKY_FIRST:
        if value[0] in FORMULA_STARTS or value.lstrip(" \t\r\n")[:1] in FORMULA_SIGNS:
            return "'" + value
    return value


def _guarded(rows: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    """Rows with formula-like cells neutralised; a row without any is passed on as it is."""
    risky = _RISKY_FIRST
    for row in rows:
        if any(cell.__class__ is str and cell and cell[0] in risky for cell in row):
            yield [neutralise(cell) for cell in row]
        else:
            yield row


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *, guard: bool = True) -> int:
    """Write a CSV as its rows come; returns how many rows. With ``guard``, formula-like text is neutralised."""
    written = 0
    if guard:
        header = [neutralise(value) for value in header]
        rows = _guarded(rows)

    def write(out: IO[bytes]) -> None:
        nonlocal written
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            written += 1
        text.flush()
        text.detach()

    write_atomic(path, write)
    return written
