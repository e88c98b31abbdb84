"""Creating a qualcode project from a REFI-QDA .qdpx made by another tool (or by qualcode)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qualcode.coding import code
from qualcode.errors import QdpxError
from qualcode.project import CODEBOOK_FILE, DATABASE, Project
from qualcode.refiqda import QdpxCode, read_qdpx
from qualcode.store import Entry
from qualcode.vocabulary import Method, Verdict


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


def import_qdpx(*, path: str | Path, project_dir: str | Path, default_coder: str = "imported") -> QdpxImport:
    """Create a qualcode project from a REFI-QDA .qdpx: codebook, transcripts, and coded selections as decisions."""
    path = Path(path)
    target = Path(project_dir)
    if (target / CODEBOOK_FILE).exists() or (target / DATABASE).exists():
        raise QdpxError("the target folder is already a qualcode project", path=target, fix="import into a new, empty folder")
    if not path.is_file():
        raise QdpxError("no such file", path=path)
    document = read_qdpx(path)
    result = QdpxImport(project=target, origin=document.origin)

    # Codebook: every code becomes a manual code; the hierarchy is kept.
    taken: set[str] = set()
    code_ids: dict[str, str] = {}

    def convert(element: QdpxCode) -> dict[str, Any]:
        code_id = _slug(element.name, taken, "code")
        code_ids[element.guid] = code_id
        entry: dict[str, Any] = {"id": code_id, "label": element.name}
        if element.description:
            entry["description"] = element.description
        children = [convert(child) for child in element.children]
        if children:
            entry["children"] = children
        else:
            entry["manual"] = True
        return entry

    codes = [convert(element) for element in document.codes]
    if not codes:
        codes = [{"id": "imported", "label": "Imported", "manual": True}]
        result.warnings.append("the project has no codes; a placeholder code 'imported' was created")
    result.codes = len(code_ids)
    result.warnings.extend(document.warnings)

    target.mkdir(parents=True, exist_ok=True)
    (target / "transcripts").mkdir(exist_ok=True)
    (target / "exports").mkdir(exist_ok=True)
    codebook_text = yaml.safe_dump(
        {"name": document.name, "description": f"Imported from {path.name} ({result.origin or 'unknown tool'})", "codes": codes},
        sort_keys=False, allow_unicode=True, width=100,
    )
    (target / CODEBOOK_FILE).write_text(codebook_text, encoding="utf-8")

    transcript_ids: set[str] = set()
    selections: list[tuple[str, int, int, list[tuple[str, str]]]] = []
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
        front = yaml.safe_dump(metadata, allow_unicode=True, sort_keys=True) if metadata else ""
        body = f"---\n{front}---\n{text}" if front or text.startswith("---") else text
        (target / "transcripts" / f"{transcript_id}.txt").write_text(body, encoding="utf-8", newline="\n")
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
                codings.append((code_id, document.users.get(coding.user_guid or "") or default_coder))
            selections.append((transcript_id, start, end, codings))

    with Project.open(target) as project:
        code(project)
        _record_selections(project, selections, result)
    return result


def _record_selections(project: Project, selections: list[tuple[str, int, int, list[tuple[str, str]]]], result: QdpxImport) -> None:
    """Each coded selection becomes an 'added' decision, by its user, on every respondent segment it overlaps."""
    store = project.store
    turns = {tid: store.segments(tid) for tid in store.transcripts()}
    by_coder: dict[str, list[Entry]] = defaultdict(list)
    seen: set[tuple[int, str, str]] = set()
    on_context: dict[str, int] = defaultdict(int)
    for transcript_id, start, end, codings in selections:
        touched = [row for row in turns.get(transcript_id, []) if row.start < end and start < row.end]
        overlapping = [row for row in touched if row.codable]
        if not overlapping or not codings:
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
    for speaker, count in sorted(on_context.items()):
        result.warnings.append(
            f"{count} coded selections lie only on '{speaker}' turns, which qualcode keeps as uncoded context; "
            f"if '{speaker}' is a participant here, set interviewer_labels in qualcode.yaml without it and import again"
        )
    for who, entries in by_coder.items():
        store.record(entries, coder=who, method=Method.IMPORT)
        result.decisions += len(entries)
    result.coders = sorted(by_coder)
