"""REFI-QDA exchange: export a project as .qdpx / .qdc, import a .qdpx made by another tool.

A .qdpx is a zip holding ``project.qde`` (XML in the ``urn:QDA-XML:project:1.0``
namespace) and the plain text of each source under ``sources/``. Positions of coded
selections are character offsets into that text, as qualcode's segment offsets are.

The importer treats the archive as hostile: it never extracts by the archive's own
paths, refuses entries with absolute or ``..`` paths, bounds every read, and refuses
XML that declares a DTD or entities before parsing it.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from qualcode import __version__
from qualcode.analysis import coded_segments
from qualcode.codebook import Codebook
from qualcode.errors import QdpxError
from qualcode.store import Entry, Store

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 20_000
MAX_RATIO = 200
SUGGESTER_USER = "qualcode suggester"
_GUID_SPACE = uuid.UUID("6f1c7a52-3b8e-4c57-9a8e-2f0d0c4e7b11")


def _guid(*parts: str) -> str:
    return str(uuid.uuid5(_GUID_SPACE, "\x1f".join(parts)))


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- export ------------------------------------------------------------------------------


def _codes_xml(parent: ET.Element, codebook: Codebook, ns: str, project: str) -> None:
    codes = ET.SubElement(parent, f"{{{ns}}}Codes")

    def add(container: ET.Element, code_id: str) -> None:
        code = codebook[code_id]
        element = ET.SubElement(container, f"{{{ns}}}Code", guid=_guid(project, "code", code.id), name=code.label, isCodable="true")
        description = code.description
        extra = [f"Include: {code.include}" if code.include else "", f"Exclude: {code.exclude}" if code.exclude else ""]
        description = "\n".join(part for part in [description, *extra] if part)
        if description:
            ET.SubElement(element, f"{{{ns}}}Description").text = description
        for child in code.children:
            add(element, child)

    for root in codebook.roots():
        add(codes, root.id)


def codebook_qdc(codebook: Codebook) -> bytes:
    """The codebook alone, as a REFI-QDA .qdc file."""
    ET.register_namespace("", CODEBOOK_NS)
    root = ET.Element(f"{{{CODEBOOK_NS}}}CodeBook", origin=f"qualcode {__version__}")
    _codes_xml(root, codebook, CODEBOOK_NS, codebook.name)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def project_qdpx(store: Store, codebook: Codebook, *, name: str, coder: str | None = None, status: str = "confirmed") -> bytes:
    """The project as a REFI-QDA .qdpx: codebook, sources, cases with attributes, and coded selections by coder."""
    ET.register_namespace("", PROJECT_NS)
    ns = PROJECT_NS
    stamp = _now()
    frame = coded_segments(store, codebook, status=status, coder=coder)
    transcripts = store.transcripts()
    coders = sorted({who for value in frame["coders"] for who in value.split(", ") if who})
    if (frame["status"] == "suggested").any():
        coders.append(SUGGESTER_USER)
    users = {who: _guid(name, "user", who) for who in coders}
    root = ET.Element(f"{{{ns}}}Project", name=name, origin=f"qualcode {__version__}", creationDateTime=stamp)
    if users:
        users_element = ET.SubElement(root, f"{{{ns}}}Users")
        for who, guid in users.items():
            ET.SubElement(users_element, f"{{{ns}}}User", guid=guid, name=who)
    codebook_element = ET.SubElement(root, f"{{{ns}}}CodeBook")
    _codes_xml(codebook_element, codebook, ns, name)
    attributes = sorted({key for stored in transcripts.values() for key in stored.metadata})
    variables = {attribute: _guid(name, "variable", attribute) for attribute in attributes}
    if variables:
        variables_element = ET.SubElement(root, f"{{{ns}}}Variables")
        for attribute, guid in variables.items():
            ET.SubElement(variables_element, f"{{{ns}}}Variable", guid=guid, name=attribute, typeOfVariable="Text")
    sources = {tid: _guid(name, "source", tid) for tid in transcripts}
    if transcripts:
        cases = ET.SubElement(root, f"{{{ns}}}Cases")
        for tid, stored in transcripts.items():
            case = ET.SubElement(cases, f"{{{ns}}}Case", guid=_guid(name, "case", tid), name=tid)
            for attribute in attributes:
                if attribute in stored.metadata:
                    value = ET.SubElement(case, f"{{{ns}}}VariableValue")
                    ET.SubElement(value, f"{{{ns}}}VariableRef", targetGUID=variables[attribute])
                    ET.SubElement(value, f"{{{ns}}}TextValue").text = stored.metadata[attribute]
            ET.SubElement(case, f"{{{ns}}}SourceRef", targetGUID=sources[tid])
    by_segment: dict[int, list] = defaultdict(list)
    for row in frame.itertuples(index=False):
        by_segment[row.segment_id].append(row)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        sources_element = ET.SubElement(root, f"{{{ns}}}Sources") if transcripts else None
        for tid in transcripts:
            guid = sources[tid]
            source = ET.SubElement(sources_element, f"{{{ns}}}TextSource", guid=guid, name=tid, plainTextPath=f"internal://{guid}.txt", creationDateTime=stamp)
            for segment in store.coded_segments(tid):
                rows = by_segment.get(segment["id"])
                if not rows:
                    continue
                selection = ET.SubElement(
                    source, f"{{{ns}}}PlainTextSelection", guid=_guid(name, "selection", str(segment["id"])),
                    name=f"{tid} {segment['start']}-{segment['end']}", startPosition=str(segment["start"]), endPosition=str(segment["end"]),
                )
                for row in rows:
                    for who in (row.coders.split(", ") if row.coders else [SUGGESTER_USER]):
                        ET.SubElement(
                            ET.SubElement(selection, f"{{{ns}}}Coding", guid=_guid(name, "coding", str(segment["id"]), row.code, who), creatingUser=users[who]),
                            f"{{{ns}}}CodeRef", targetGUID=_guid(name, "code", row.code),
                        )
            zipped.writestr(f"sources/{guid}.txt", store.transcript_text(tid).encode("utf-8"))
        zipped.writestr("project.qde", ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return archive.getvalue()


# -- import ------------------------------------------------------------------------------


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


class _Archive:
    """Bounded, path-checked reads from an untrusted zip."""

    def __init__(self, path: Path, data: bytes | None = None) -> None:
        self.path = path
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data) if data is not None else path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise QdpxError(f"not a REFI-QDA archive ({exc})", path=path, fix="export a .qdpx project from your QDA tool") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise QdpxError(f"refused: {len(infos)} entries in the archive (limit {MAX_ENTRIES})", path=path)
        total = 0
        for info in infos:
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise QdpxError(f"refused: archive entry '{name}' points outside the archive", path=path, fix="only open .qdpx files from sources you trust")
            total += info.file_size
            if info.file_size > MAX_ENTRY_BYTES or (info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 10_000_000):
                raise QdpxError(f"refused: archive entry '{name}' expands to {info.file_size:,} bytes", path=path)
        if total > MAX_ARCHIVE_BYTES:
            raise QdpxError(f"refused: the archive expands to {total:,} bytes (limit {MAX_ARCHIVE_BYTES:,})", path=path)
        self.names = {info.filename.replace("\\", "/"): info for info in infos}
        self.read_total = 0

    def read(self, name: str) -> bytes | None:
        info = self.names.get(name)
        if info is None:
            return None
        with self.zip.open(info) as handle:
            data = handle.read(MAX_ENTRY_BYTES + 1)  # sizes in the directory can lie
        self.read_total += len(data)
        if len(data) > MAX_ENTRY_BYTES or self.read_total > MAX_ARCHIVE_BYTES:
            raise QdpxError(f"refused: archive entry '{name}' expands past the size limit", path=self.path)
        return data


def parse_safe_xml(data: bytes, path: Path, member: str = "project.qde") -> ET.Element:
    """Parse XML that must not declare a DTD or entities (no external entities, no entity expansion)."""
    lowered = data.lower()
    # In well-formed XML these can only be markup: in text they would be escaped.
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise QdpxError(f"refused: {member} declares a DTD or entities", path=path, fix="REFI-QDA files need neither; re-export the project")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        raise QdpxError(f"malformed XML in {member} at line {line}, column {column}", path=path, fix="re-export the project from its tool") from None


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
    from qualcode.project import DATABASE, Project, code

    path = Path(path)
    target = Path(project_dir)
    if (target / "codebook.yaml").exists() or (target / DATABASE).exists():
        raise QdpxError("the target folder is already a qualcode project", path=target, fix="import into a new, empty folder")
    if not path.is_file():
        raise QdpxError("no such file", path=path)
    archive = _Archive(path)
    data = archive.read("project.qde")
    if data is None:
        raise QdpxError("not a REFI-QDA project: the archive has no project.qde", path=path, fix="export a .qdpx project from your QDA tool")
    root = parse_safe_xml(data, path)
    ns = {"q": PROJECT_NS}
    if root.tag != f"{{{PROJECT_NS}}}Project":
        raise QdpxError(f"not a REFI-QDA project: root element is '{root.tag}'", path=path)
    result = QdpxImport(project=target, origin=root.get("origin", ""))
    users = {user.get("guid"): (user.get("name") or user.get("id") or default_coder) for user in root.iterfind("q:Users/q:User", ns)}

    # Codebook: every code becomes a manual code; the hierarchy is kept.
    taken: set[str] = set()
    code_ids: dict[str, str] = {}

    def convert(element: ET.Element) -> dict[str, Any]:
        name = element.get("name") or "code"
        code_id = _slug(name, taken, "code")
        code_ids[element.get("guid", "")] = code_id
        entry: dict[str, Any] = {"id": code_id, "label": name}
        description = element.findtext("q:Description", default="", namespaces=ns).strip()
        if description:
            entry["description"] = description
        children = [convert(child) for child in element.findall("q:Code", ns)]
        if children:
            entry["children"] = children
        else:
            entry["manual"] = True
        return entry

    codes = [convert(element) for element in root.findall("q:CodeBook/q:Codes/q:Code", ns)]
    if not codes:
        codes = [{"id": "imported", "label": "Imported", "manual": True}]
        result.warnings.append("the project has no codes; a placeholder code 'imported' was created")
    result.codes = len(code_ids)

    # Attributes: cases' variable values reach the sources they refer to.
    variables = {variable.get("guid"): variable.get("name") or "variable" for variable in root.iterfind("q:Variables/q:Variable", ns)}

    def values_of(element: ET.Element) -> dict[str, str]:
        found = {}
        for value in element.findall("q:VariableValue", ns):
            ref = value.find("q:VariableRef", ns)
            key = variables.get(ref.get("targetGUID") if ref is not None else None)
            text = next((child.text for child in value if child.tag != f"{{{PROJECT_NS}}}VariableRef" and child.text), None)
            if key and text is not None:
                found[re.sub(r"\W+", "_", key.strip().lower()).strip("_") or "variable"] = text.strip()
        return found

    source_metadata: dict[str, dict[str, str]] = defaultdict(dict)
    for case in root.iterfind("q:Cases/q:Case", ns):
        values = values_of(case)
        for ref in case.findall("q:SourceRef", ns):
            source_metadata[ref.get("targetGUID", "")].update(values)

    target.mkdir(parents=True, exist_ok=True)
    (target / "transcripts").mkdir(exist_ok=True)
    (target / "exports").mkdir(exist_ok=True)
    codebook_text = yaml.safe_dump(
        {"name": root.get("name") or path.stem, "description": f"Imported from {path.name} ({result.origin or 'unknown tool'})", "codes": codes},
        sort_keys=False, allow_unicode=True, width=100,
    )
    (target / "codebook.yaml").write_text(codebook_text, encoding="utf-8")

    transcript_ids: set[str] = set()
    selections: list[tuple[str, int, int, list[tuple[str, str]]]] = []
    for kind in ("PDFSource", "PictureSource", "AudioSource", "VideoSource"):
        for element in root.iterfind(f"q:Sources/q:{kind}", ns):
            result.warnings.append(f"{kind} '{element.get('name') or element.get('guid')}' skipped: qualcode codes text sources only")
    for source in root.iterfind("q:Sources/q:TextSource", ns):
        guid = source.get("guid", "")
        label = source.get("name") or PurePosixPath(source.get("plainTextPath") or guid).stem
        raw = _source_text(archive, source, path, result)
        if raw is None:
            continue
        text, mapping = _normalise_newlines(raw)
        transcript_id = _slug(label, transcript_ids, "source")
        metadata = {**values_of(source), **source_metadata.get(guid, {})}
        source_selections = list(source.findall("q:PlainTextSelection", ns))
        if not text.strip():
            result.warnings.append(f"source '{label}' has no text ({len(raw)} characters); its {len(source_selections)} selections cannot be placed")
            result.unplaced += len(source_selections)
            result.selections += len(source_selections)
            continue
        front = yaml.safe_dump(metadata, allow_unicode=True, sort_keys=True) if metadata else ""
        body = f"---\n{front}---\n{text}" if front or text.startswith("---") else text
        (target / "transcripts" / f"{transcript_id}.txt").write_text(body, encoding="utf-8", newline="\n")
        result.sources += 1
        for selection in source_selections:
            result.selections += 1
            try:
                start, end = int(selection.get("startPosition", "")), int(selection.get("endPosition", ""))
            except ValueError:
                result.warnings.append(f"selection {selection.get('guid')} in '{label}' has no valid positions; skipped")
                result.unplaced += 1
                continue
            start, end = mapping[max(0, min(start, len(raw)))], mapping[max(0, min(end, len(raw)))]
            codings = []
            for coding in selection.findall("q:Coding", ns):
                ref = coding.find("q:CodeRef", ns)
                code_id = code_ids.get(ref.get("targetGUID") if ref is not None else "")
                if code_id is None:
                    result.warnings.append(f"a coding in '{label}' refers to an unknown code; skipped")
                    continue
                codings.append((code_id, users.get(coding.get("creatingUser") or selection.get("creatingUser"), default_coder)))
            selections.append((transcript_id, start, end, codings))

    code(project_dir=target)
    with Project.open(target).store() as store:
        turns = {tid: store.segments(tid) for tid in store.transcripts()}
        by_coder: dict[str, list[Entry]] = defaultdict(list)
        seen: set[tuple[int, str, str]] = set()
        on_context: dict[str, int] = defaultdict(int)
        for transcript_id, start, end, codings in selections:
            touched = [row for row in turns.get(transcript_id, []) if row["start"] < end and start < row["end"]]
            overlapping = [row for row in touched if row["coded"]]
            if not overlapping or not codings:
                result.unplaced += 1
                for row in touched[:1]:
                    on_context[row["speaker"] or "(text before the first speaker)"] += 1
                continue
            result.placed += 1
            for row in overlapping:
                for code_id, who in codings:
                    if (row["id"], code_id, who) not in seen:
                        seen.add((row["id"], code_id, who))
                        by_coder[who].append(Entry(row["id"], code_id, "added"))
        for speaker, count in sorted(on_context.items()):
            result.warnings.append(
                f"{count} coded selections lie only on '{speaker}' turns, which qualcode keeps as uncoded context; "
                f"if '{speaker}' is a participant here, set interviewer_labels in qualcode.yaml without it and import again"
            )
        for who, entries in by_coder.items():
            store.record(entries, coder=who, method="import")
            result.decisions += len(entries)
        result.coders = sorted(by_coder)
    return result


def _source_text(archive: _Archive, source: ET.Element, path: Path, result: QdpxImport) -> str | None:
    inline = source.find(f"{{{PROJECT_NS}}}PlainTextContent")
    if inline is not None and inline.text:
        return inline.text
    location = source.get("plainTextPath") or ""
    if location.startswith("internal://"):
        member = "sources/" + location[len("internal://") :]
    elif "://" in location or location.startswith("/") or re.match(r"^[A-Za-z]:", location):
        result.warnings.append(f"source '{source.get('name')}' points outside the archive ({location}); skipped")
        return None
    else:
        member = "sources/" + location.lstrip("./")
    data = archive.read(member)
    if data is None:
        result.warnings.append(f"source '{source.get('name') or location}': {member} is missing from the archive; skipped")
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        result.warnings.append(f"{member} is not UTF-8; read as Windows-1252")
        return data.decode("cp1252", errors="replace")
