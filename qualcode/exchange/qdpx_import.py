"""Creating a qualcode project from a REFI-QDA .qdpx made by another tool (or by qualcode)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qualcode.codebook import ID_PATTERN
from qualcode.errors import QdpxError
from qualcode.ingest.refiqda import QdpxCode, QdpxDocument, read_qdc, read_qdpx
from qualcode.project import CODEBOOK_FILE, DATABASE, Project
from qualcode.run.coding import code
from qualcode.store import Entry
from qualcode.vocabulary import Mark, Method, Verdict


@dataclass
class QdpxImport:
    project: Path
    origin: str = ""
    codes: int = 0
    sources: int = 0
    selections: int = 0
    placed: int = 0
    unplaced: int = 0
    decisions: int = 0
    notes: int = 0
    coders: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _slug(text: str, taken: set[str], fallback: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.strip().lower()).strip("-_")[:56] or fallback
    if not slug[0].isalpha():
        slug = f"{fallback}-{slug}"
    candidate, number = slug, 2
    while candidate in taken:
        candidate = f"{slug}-{number}"
        number += 1
    taken.add(candidate)
    return candidate


def _normalise_newlines(text: str) -> tuple[str, list[int]]:
    """Text with \\r\\n and \\r as \\n, and for each original position its position in the new text."""
    mapping = []
    out = []
    position = 0
    index = 0
    while index < len(text):
        mapping.append(position)
        char = text[index]
        if char == "\r":
            if index + 1 < len(text) and text[index + 1] == "\n":
                mapping.append(position)
                index += 1
            out.append("\n")
        else:
            out.append(char)
        position += 1
        index += 1
    mapping.append(position)
    return "".join(out), mapping


def codebook_entries(codes: list[QdpxCode], warnings: list[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """qualcode code definitions for REFI-QDA codes (every code manual, the hierarchy kept) and each code's id by GUID.

    A code qualcode exported keeps its id; the others get one made from their name, and a
    warning says so.
    """
    taken: set[str] = set()
    code_ids: dict[str, str] = {}
    derived: list[tuple[str, str]] = []

    def convert(element: QdpxCode) -> dict[str, Any]:
        if element.code_id and ID_PATTERN.match(element.code_id) and element.code_id not in taken:
            code_id = element.code_id
            taken.add(code_id)
        else:
            code_id = _slug(element.name, taken, "code")
            derived.append((element.name, code_id))
        code_ids[element.guid] = code_id
        entry: dict[str, Any] = {"id": code_id, "label": element.name.strip() or code_id}
        if element.description:
            entry["description"] = element.description
        children = [convert(child) for child in element.children]
        if children:
            entry["children"] = children
        else:
            entry["manual"] = True
        return entry

    entries = [convert(element) for element in codes]
    if derived:
        name, example = derived[0]
        warnings.append(f"{len(derived)} code ids were made from the code names (lower case, other characters as '-'; "
                        f"e.g. '{name.strip()}' became '{example}'); rename them in codebook.yaml if you like")
    return entries, code_ids


def import_codebook(*, path: str | Path, project_dir: str | Path) -> tuple[Path, int, list[str]]:
    """Start a project's codebook.yaml from another tool's REFI-QDA codebook (.qdc, or a .qdpx's codes); returns the file, the number of codes, warnings."""
    path, target = Path(path), Path(project_dir)
    if (target / CODEBOOK_FILE).exists():
        raise QdpxError("the project already has a codebook.yaml", path=target / CODEBOOK_FILE,
                        fix="move it away first, or import into a new folder")
    warnings: list[str] = []
    if not path.is_file():
        raise QdpxError("no such file", path=path)
    # A whole project's codebook serves as well: the codes of another tool's .qdpx, without its sources.
    codes = read_qdpx(path).codes if path.suffix.lower() == ".qdpx" else read_qdc(path)
    entries, code_ids = codebook_entries(codes, warnings)
    if not entries:
        raise QdpxError("the codebook holds no codes", path=path)
    target.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"name": path.stem, "description": f"Imported from {path.name}", "codes": entries},
                          sort_keys=False, allow_unicode=True, width=100)
    (target / CODEBOOK_FILE).write_text(text, encoding="utf-8")
    return target / CODEBOOK_FILE, len(code_ids), warnings


Selection = tuple[str, int, int, list[tuple[str, str]], list[tuple[str, str]]]  # transcript, start, end, (code, coder)s, (text, coder)s


def import_qdpx(*, path: str | Path, project_dir: str | Path, default_coder: str = "imported") -> QdpxImport:
    """Create a qualcode project from a REFI-QDA .qdpx: codebook, transcripts, coded selections as decisions, memos as notes.

    The project is built in a temporary folder beside the target and renamed into place when
    whole, so an interrupted import leaves nothing half-made behind.
    """
    path = Path(path)
    target = Path(project_dir)
    if (target / CODEBOOK_FILE).exists() or (target / DATABASE).exists():
        raise QdpxError("the target folder is already a qualcode project", path=target, fix="import into a new, empty folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise QdpxError("the target folder is not empty", path=target, fix="import into a new, empty folder")
    if path.suffix.lower() == ".qdc":
        raise QdpxError("a REFI-QDA codebook (.qdc), not a project", path=path,
                        fix=f"start a project from it with: qualcode codebook --import {path} --project {target}")
    if not path.is_file():
        raise QdpxError("no such file", path=path)
    document = read_qdpx(path)
    result = QdpxImport(project=target, origin=document.origin)
    codes, code_ids = codebook_entries(document.codes, result.warnings)
    if not codes:
        codes = [{"id": "imported", "label": "Imported", "manual": True}]
        result.warnings.append("the project has no codes; a placeholder code 'imported' was created")
    result.codes = len(code_ids)
    result.warnings.extend(document.warnings)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=target.parent))
    try:
        (building / "transcripts").mkdir()
        (building / "exports").mkdir()
        codebook_text = yaml.safe_dump(
            {"name": document.name, "description": f"Imported from {path.name} ({result.origin or 'unknown tool'})", "codes": codes},
            sort_keys=False, allow_unicode=True, width=100,
        )
        (building / CODEBOOK_FILE).write_text(codebook_text, encoding="utf-8")
        selections = _write_sources(document, building, code_ids, default_coder, result)
        with Project.open(building) as project:
            code(project)
            _record_selections(project, selections, result)
        if target.exists():
            target.rmdir()  # empty, as checked above
        os.replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return result


def _user(document: QdpxDocument, guid: str | None, default_coder: str) -> str:
    name = (document.users.get(guid or "") or "").strip()
    return " ".join(name.split()) or default_coder


def _write_sources(document: QdpxDocument, folder: Path, code_ids: dict[str, str], default_coder: str, result: QdpxImport) -> list[Selection]:
    transcript_ids: set[str] = set()
    selections: list[Selection] = []
    for source in document.sources:
        if source.text is None:
            continue
        text, mapping = _normalise_newlines(source.text)
        transcript_id = _slug(source.name, transcript_ids, "source")
        metadata = {**source.variables, **document.case_variables.get(source.guid, {})}
        if not text.strip():
            result.warnings.append(f"source '{source.name}' has no text ({len(source.text)} characters); its {len(source.selections)} selections cannot be placed")
            result.unplaced += len(source.selections)
            result.selections += len(source.selections)
            continue
        front = yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False) if metadata else ""
        body = f"---\n{front}---\n{text}" if front or text.startswith("---") else text
        (folder / "transcripts" / f"{transcript_id}.txt").write_text(body, encoding="utf-8", newline="\n")
        result.sources += 1
        for selection in source.selections:
            result.selections += 1
            if selection.start is None or selection.end is None:
                result.warnings.append(f"selection {selection.guid} in '{source.name}' has no valid positions; skipped")
                result.unplaced += 1
                continue
            start = mapping[max(0, min(selection.start, len(source.text)))]
            end = mapping[max(0, min(selection.end, len(source.text)))]
            codings = []
            for coding in selection.codings:
                code_id = code_ids.get(coding.code_guid)
                if code_id is None:
                    result.warnings.append(f"a coding in '{source.name}' refers to an unknown code; skipped")
                    continue
                codings.append((code_id, _user(document, coding.user_guid, default_coder)))
            memos = [(document.notes[guid].text, _user(document, document.notes[guid].user_guid or selection.user_guid, default_coder))
                     for guid in selection.notes if guid in document.notes]
            selections.append((transcript_id, start, end, codings, memos))
    return selections


def _record_selections(project: Project, selections: list[Selection], result: QdpxImport) -> None:
    """Each coded selection becomes an 'added' decision, by its user, on every respondent segment it overlaps, and the
    segment counts as reviewed by that user; a memo becomes a note on the first of them."""
    store = project.store
    turns = {tid: store.segments(tid) for tid in store.transcripts()}
    by_coder: dict[str, list[Entry]] = defaultdict(list)
    seen: set[tuple[int, str | None, str]] = set()
    on_context: dict[str, int] = defaultdict(int)
    for transcript_id, start, end, codings, memos in selections:
        touched = [row for row in turns.get(transcript_id, []) if row.start < end and start < row.end]
        overlapping = [row for row in touched if row.codable]
        if not overlapping or not (codings or memos):
            result.unplaced += 1
            for row in touched[:1]:
                on_context[row.speaker or "(text before the first speaker)"] += 1
            continue
        result.placed += 1
        for row in overlapping:
            for code_id, who in codings:
                if (row.id, code_id, who) not in seen:
                    seen.add((row.id, code_id, who))
                    by_coder[who].append(Entry(row.id, code_id, Verdict.ADDED))
                if (row.id, None, who) not in seen:
                    seen.add((row.id, None, who))
                    by_coder[who].append(Entry(row.id, None, Mark.REVIEWED))
        for text, who in memos:
            by_coder[who].append(Entry(overlapping[0].id, None, Mark.NOTE, note=text))
            result.notes += 1
    for speaker, count in sorted(on_context.items()):
        result.warnings.append(
            f"{count} coded selections lie only on '{speaker}' turns, which qualcode keeps as uncoded context; "
            f"if '{speaker}' is a participant here, set interviewer_labels in qualcode.yaml without it and import again"
        )
    for who, entries in by_coder.items():
        store.record(entries, coder=who, method=Method.IMPORT)
        result.decisions += sum(1 for entry in entries if entry.code is not None)
    result.coders = sorted(who for who, entries in by_coder.items() if any(entry.code for entry in entries))
