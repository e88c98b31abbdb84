"""Creating a qualcode project from a REFI-QDA .qdpx made by another tool (or by qualcode)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qualcode.codebook import GUID_PATTERN, ID_PATTERN, parse_codebook
from qualcode.errors import QdpxError, QualcodeError
from qualcode.exchange.export import GUIDS_META
from qualcode.exchange.qdpx_export import DECISIONS_FORMAT
from qualcode.ingest.refiqda import QdpxCode, QdpxDocument, guid, read_qdc, read_qdpx
from qualcode.leftovers import sweep, temporary_path
from qualcode.project import CODEBOOK_FILE, DATABASE, Project
from qualcode.run.coding import code
from qualcode.settings import SETTINGS_FILE, load_settings
from qualcode.store import Entry
from qualcode.vocabulary import Mark, Method, Verdict

SAFE_NAME = re.compile(r"^[\w][\w .()-]{0,120}$")  # a transcript id that is a safe file name as it stands


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
    restored: list[str] = field(default_factory=list)  # qualcode's own files the archive carried and the import restored


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
        if GUID_PATTERN.match(element.guid or "") and element.guid.lower() != guid("code", code_id):
            entry["guid"] = element.guid.lower()  # another tool's GUID: kept, so its exports and ours agree
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
    if path.suffix.lower() == ".qdpx":
        document = read_qdpx(path)
        codes = document.codes
        warnings.extend(warning for warning in document.warnings if warning.startswith("a code's"))
    else:
        codes = read_qdc(path, warnings)
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
    sweep(target.parent, "importing")  # what a killed import left here
    building = temporary_path(target, "importing")
    building.mkdir()
    try:
        codebook_text = yaml.safe_dump(
            {"name": document.name, "description": f"Imported from {path.name} ({result.origin or 'unknown tool'})", "codes": codes},
            sort_keys=False, allow_unicode=True, width=100,
        )
        own = _restorable(document, building, result)
        (building / CODEBOOK_FILE).write_text(own.get("codebook.yaml", codebook_text), encoding="utf-8")
        if "qualcode.yaml" in own:
            (building / SETTINGS_FILE).write_text(own["qualcode.yaml"], encoding="utf-8")
        settings = load_settings(building)  # the restored folders, if the study named its own
        (building / settings.transcripts).mkdir(parents=True, exist_ok=True)
        (building / settings.exports).mkdir(parents=True, exist_ok=True)
        selections = _write_sources(document, building / settings.transcripts, code_ids, default_coder, result,
                                    keep_names="decisions" in own)
        with Project.open(building) as project:
            code(project)
            if "decisions" in own:
                _restore_decisions(project, own["decisions"], result)
            else:
                _record_selections(project, selections, result)
            _keep_guids(project, document)
        if target.exists():
            target.rmdir()  # empty, as checked above
        os.replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return result


def _restorable(document: QdpxDocument, folder: Path, result: QdpxImport) -> dict[str, Any]:
    """qualcode's own files from the archive that load as they should: the codebook as written, the settings, the
    decisions. One that does not is left out, and said; the project is then built from the standard's part alone."""
    own: dict[str, Any] = {}
    for name in ("codebook.yaml", "qualcode.yaml"):
        data = document.extras.get(name)
        if data is None:
            continue
        try:
            text = data.decode("utf-8")
            if name == "codebook.yaml":
                parse_codebook(text, path=name)
            else:
                (folder / SETTINGS_FILE).write_text(text, encoding="utf-8")
                load_settings(folder)
            own[name] = text
            result.restored.append(name)
        except (UnicodeDecodeError, QualcodeError) as exc:
            result.warnings.append(f"the archive's {name} was not restored ({exc}); built from the REFI-QDA project instead")
        finally:
            (folder / SETTINGS_FILE).unlink(missing_ok=True)
    raw = document.extras.get("decisions.json")
    if raw is not None:
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != DECISIONS_FORMAT or not isinstance(data.get("decisions"), list):
                raise ValueError("not qualcode's decisions")
            own["decisions"] = [_decision_row(row) for row in data["decisions"]]
            result.restored.append("decisions.json")
        except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            result.warnings.append(f"the archive's decisions.json was not restored ({exc}); the coded selections are imported instead")
    return own


def _decision_row(row: Any) -> dict[str, Any]:
    """One standing state from decisions.json, checked field by field (an archive is untrusted)."""
    codes = row["codes"]
    if not (isinstance(row["transcript"], str) and isinstance(row["coder"], str) and row["coder"].strip() and isinstance(codes, dict)
            and all(isinstance(code_id, str) and verdict in {v.value for v in Verdict} for code_id, verdict in codes.items())
            and all(isinstance(note, str) for note in row.get("notes", []))):
        raise ValueError(f"a malformed decision row for '{str(row.get('transcript'))[:40]}'")
    methods = row.get("methods") or {}
    return {"transcript": row["transcript"], "start": int(row["start"]), "end": int(row["end"]), "coder": row["coder"].strip()[:200],
            "reviewed": bool(row.get("reviewed")), "codes": codes, "notes": list(row.get("notes", [])),
            "methods": {code_id: str(methods.get(code_id, Method.IMPORT)) for code_id in codes}}


def _restore_decisions(project: Project, rows: list[dict[str, Any]], result: QdpxImport) -> None:
    """Every coder's standing decisions as they were exported: accepted, rejected and added codes, segments reviewed with
    no code, memos. A row whose segment is not where it was (other segmenting settings) goes to the segment at its start."""
    store = project.store
    segments = {tid: store.codable_segments(tid) for tid in store.transcripts()}
    exact = {(tid, row.start, row.end): row.id for tid, found in segments.items() for row in found}
    known = project.codebook.codes
    by_batch: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for row in rows:
        segment_id = exact.get((row["transcript"], row["start"], row["end"]))
        if segment_id is None:
            near = [seg for seg in segments.get(row["transcript"], []) if seg.start <= row["start"] < seg.end]
            if not near:
                result.unplaced += 1
                continue
            segment_id = near[0].id
        for code_id, verdict in row["codes"].items():
            if code_id in known:
                by_batch[(row["coder"], row["methods"][code_id])].append(Entry(segment_id, code_id, verdict))
                result.decisions += 1
        if row["reviewed"]:
            by_batch[(row["coder"], Method.IMPORT)].append(Entry(segment_id, None, Mark.REVIEWED))
        for note in row["notes"]:
            if note.strip():
                by_batch[(row["coder"], Method.IMPORT)].append(Entry(segment_id, None, Mark.NOTE, note=note))
                result.notes += 1
        result.placed += 1
    for (who, method), entries in by_batch.items():
        store.record(entries, coder=who, method=method if method in {m.value for m in Method} else Method.IMPORT)
    result.coders = sorted({who for (who, _method), entries in by_batch.items() if any(entry.code for entry in entries)})


def _keep_guids(project: Project, document: QdpxDocument) -> None:
    """Remember the GUIDs another tool gave the sources and users, so the project's exports keep them."""
    names = {source.guid: source.name for source in document.sources}
    kept = {f"user:{' '.join(name.split())}": user_guid.lower() for user_guid, name in document.users.items()
            if name.strip() and GUID_PATTERN.match(user_guid)}
    transcripts = set(project.store.transcripts())
    for source_guid, name in names.items():
        tid = name if name in transcripts else None
        if tid is not None and GUID_PATTERN.match(source_guid):
            kept[f"source:{tid}"] = source_guid.lower()
    if kept:
        project.store.set_meta(GUIDS_META, json.dumps(kept, sort_keys=True))


def _user(document: QdpxDocument, guid: str | None, default_coder: str) -> str:
    name = (document.users.get(guid or "") or "").strip()
    return " ".join(name.split()) or default_coder


def _write_sources(document: QdpxDocument, folder: Path, code_ids: dict[str, str], default_coder: str, result: QdpxImport,
                   keep_names: bool = False) -> list[Selection]:
    transcript_ids: set[str] = set()
    selections: list[Selection] = []
    for source in document.sources:
        if source.text is None:
            continue
        text, mapping = _normalise_newlines(source.text)
        if keep_names and SAFE_NAME.match(source.name) and source.name not in transcript_ids:
            transcript_id = source.name  # a qualcode export's transcript id, kept as it was (its decisions name it)
            transcript_ids.add(transcript_id)
        else:
            transcript_id = _slug(source.name, transcript_ids, "source")
        metadata = {**source.variables, **document.case_variables.get(source.guid, {})}
        if not text.strip():
            result.warnings.append(f"source '{source.name}' has no text ({len(source.text)} characters); its {len(source.selections)} selections cannot be placed")
            result.unplaced += len(source.selections)
            result.selections += len(source.selections)
            continue
        front = yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False) if metadata else ""
        body = f"---\n{front}---\n{text}" if front or text.startswith("---") else text
        (folder / f"{transcript_id}.txt").write_text(body, encoding="utf-8", newline="\n")
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
