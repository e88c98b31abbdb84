"""The REFI-QDA exchange format: reading a .qdpx project safely.

A .qdpx is a zip holding ``project.qde`` (XML in the ``urn:QDA-XML:project:1.0``
namespace) and the plain text of each source under ``sources/``. Positions of coded
selections are character offsets into that text, as qualcode's segment offsets are.

The reader treats the archive as hostile: it never extracts by the archive's own paths,
refuses entries with absolute or ``..`` paths, bounds every read, and refuses XML that
declares a DTD or entities before parsing it. ``read_qdpx`` returns plain data; building
a project from it is ``qdpx_import``'s job, writing one ``qdpx_export``'s.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

from qualcode.errors import QdpxError
from qualcode.files import bom_encoding

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 20_000
MAX_RATIO = 200
MAX_CODE_DEPTH = 100  # levels of codes within codes
MAX_NAME_CHARS = 200  # of a code's name: longer ones are cut, and said
MAX_DESCRIPTION_CHARS = 20_000
_GUID_SPACE = uuid.UUID("6f1c7a52-3b8e-4c57-9a8e-2f0d0c4e7b11")
_NS = {"q": PROJECT_NS}
CODE_ID_PREFIX = "qualcode id: "  # the last line of a code's description in qualcode's exports


def guid(*parts: str) -> str:
    """A stable GUID derived from names, so the same thing gets the same GUID in every export."""
    return str(uuid.uuid5(_GUID_SPACE, "\x1f".join(parts)))


EXTRA_FILES = ("codebook.yaml", "qualcode.yaml", "decisions.json")


class SafeArchive:
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


# -- what a project holds --------------------------------------------------------------------


@dataclass
class QdpxCode:
    guid: str
    name: str
    description: str
    children: list["QdpxCode"] = field(default_factory=list)
    code_id: str | None = None  # the id qualcode gave it, when qualcode wrote the file


@dataclass
class QdpxCoding:
    code_guid: str
    user_guid: str | None  # the coding's creatingUser, else its selection's


@dataclass
class QdpxSelection:
    guid: str
    start: int | None  # None when the positions are missing or not numbers
    end: int | None
    codings: list[QdpxCoding]
    user_guid: str | None = None
    notes: list[str] = field(default_factory=list)  # guids of the notes it refers to


@dataclass
class QdpxNote:
    guid: str
    user_guid: str | None
    text: str


@dataclass
class QdpxSource:
    guid: str
    name: str  # the source's name, else the stem of its text file
    text: str | None  # None when it could not be read (the reason is among the document's warnings)
    selections: list[QdpxSelection]
    variables: dict[str, str]  # the source's own variable values


@dataclass
class QdpxDocument:
    name: str
    origin: str
    users: dict[str, str]  # guid -> name ('' when the user has neither name nor id)
    codes: list[QdpxCode]
    sources: list[QdpxSource]
    case_variables: dict[str, dict[str, str]]  # source guid -> the variable values of the cases holding it
    notes: dict[str, QdpxNote] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extras: dict[str, bytes] = field(default_factory=dict)  # qualcode's own files under qualcode/ (a qualcode export)

    def code_names(self) -> dict[str, str]:
        names: dict[str, str] = {}

        def visit(code: QdpxCode) -> None:
            names[code.guid] = code.name
            for child in code.children:
                visit(child)

        for root in self.codes:
            visit(root)
        return names


def read_qdpx(path: str | Path) -> QdpxDocument:
    """Everything qualcode reads from a .qdpx project, as plain data; raises QdpxError for archives it must not open."""
    path = Path(path)
    archive = SafeArchive(path)
    data = archive.read("project.qde")
    if data is None:
        raise QdpxError("not a REFI-QDA project: the archive has no project.qde", path=path, fix="export a .qdpx project from your QDA tool")
    root = parse_safe_xml(data, path)
    if root.tag != f"{{{PROJECT_NS}}}Project":
        raise QdpxError(f"not a REFI-QDA project: root element is '{root.tag}'", path=path)
    document = QdpxDocument(
        name=root.get("name") or path.stem,
        origin=root.get("origin", ""),
        users={user.get("guid", ""): (user.get("name") or user.get("id") or "") for user in root.iterfind("q:Users/q:User", _NS)},
        codes=[],
        sources=[],
        case_variables={},
    )
    document.codes = _codes(root.findall("q:CodeBook/q:Codes/q:Code", _NS), path, _NS, document.warnings)
    variables = {variable.get("guid"): variable.get("name") or "variable" for variable in root.iterfind("q:Variables/q:Variable", _NS)}
    for case in root.iterfind("q:Cases/q:Case", _NS):
        values = _values(case, variables)
        for ref in case.findall("q:SourceRef", _NS):
            document.case_variables.setdefault(ref.get("targetGUID", ""), {}).update(values)
    for note in root.iterfind("q:Notes/q:Note", _NS):
        text = note.findtext("q:PlainTextContent", default="", namespaces=_NS)
        if text.strip():
            document.notes[note.get("guid", "")] = QdpxNote(note.get("guid", ""), note.get("creatingUser"), text.strip())
    for kind in ("PDFSource", "PictureSource", "AudioSource", "VideoSource"):
        for element in root.iterfind(f"q:Sources/q:{kind}", _NS):
            document.warnings.append(f"{kind} '{element.get('name') or element.get('guid')}' skipped: qualcode codes text sources only")
    for source in root.iterfind("q:Sources/q:TextSource", _NS):
        source_guid = source.get("guid", "")
        document.sources.append(QdpxSource(
            guid=source_guid,
            name=source.get("name") or PurePosixPath(source.get("plainTextPath") or source_guid).stem,
            text=_source_text(archive, source, document.warnings),
            selections=[_selection(selection) for selection in source.findall("q:PlainTextSelection", _NS)],
            variables=_values(source, variables),
        ))
    for name in EXTRA_FILES:  # what a qualcode export carries beside the standard's own (bounded like every entry)
        data = archive.read(f"qualcode/{name}")
        if data is not None:
            document.extras[name] = data
    return document


def _codes(elements: list[ET.Element], path: Path, ns: dict[str, str] = _NS, warnings: list[str] | None = None) -> list[QdpxCode]:
    """The code tree, after checking without recursion that it nests no deeper than ``MAX_CODE_DEPTH``."""
    pending = [(element, 1) for element in elements]
    while pending:
        element, depth = pending.pop()
        if depth > MAX_CODE_DEPTH:
            raise QdpxError(f"refused: codes nest more than {MAX_CODE_DEPTH} levels deep", path=path,
                            fix="a codebook's tree is a few levels deep; re-export it from its tool")
        pending.extend((child, depth + 1) for child in element.findall("q:Code", ns))
    return [_code(element, ns, warnings if warnings is not None else []) for element in elements]


def _bounded(value: str, limit: int, what: str, warnings: list[str]) -> str:
    if len(value) <= limit:
        return value
    warnings.append(f"a code's {what} of {len(value):,} characters was cut to {limit:,}: '{value[:40]}...'")
    return value[:limit]


def _code(element: ET.Element, ns: dict[str, str], warnings: list[str]) -> QdpxCode:
    description = _bounded(element.findtext("q:Description", default="", namespaces=ns).strip(), MAX_DESCRIPTION_CHARS, "description", warnings)
    code_id = None
    lines = description.splitlines()
    if lines and lines[-1].startswith(CODE_ID_PREFIX):
        code_id = lines[-1][len(CODE_ID_PREFIX) :].strip() or None
        description = "\n".join(lines[:-1]).strip()
    return QdpxCode(
        guid=element.get("guid", ""),
        name=_bounded(element.get("name") or "code", MAX_NAME_CHARS, "name", warnings),
        description=description,
        children=[_code(child, ns, warnings) for child in element.findall("q:Code", ns)],
        code_id=code_id,
    )


def read_qdc(path: str | Path, warnings: list[str] | None = None) -> list[QdpxCode]:
    """The codes of a REFI-QDA codebook (.qdc): an XML file, read with the same care as a project."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_ENTRY_BYTES:
            raise QdpxError(f"refused: {size:,} bytes is more than a codebook holds", path=path)
        data = path.read_bytes()
    except OSError as exc:
        raise QdpxError(f"cannot read ({exc.strerror})", path=path) from None
    root = parse_safe_xml(data, path, member=path.name)
    if root.tag != f"{{{CODEBOOK_NS}}}CodeBook":
        raise QdpxError(f"not a REFI-QDA codebook: root element is '{root.tag}'", path=path,
                        fix="export the codebook from your QDA tool as REFI-QDA (.qdc)")
    return _codes(root.findall("q:Codes/q:Code", {"q": CODEBOOK_NS}), path, {"q": CODEBOOK_NS}, warnings)


def _selection(element: ET.Element) -> QdpxSelection:
    start: int | None
    end: int | None
    try:
        start, end = int(element.get("startPosition", "")), int(element.get("endPosition", ""))
    except ValueError:
        start = end = None
    codings = []
    for coding in element.findall("q:Coding", _NS):
        ref = coding.find("q:CodeRef", _NS)
        codings.append(QdpxCoding(ref.get("targetGUID", "") if ref is not None else "", coding.get("creatingUser") or element.get("creatingUser")))
    notes = [ref.get("targetGUID", "") for ref in element.findall("q:NoteRef", _NS)]
    return QdpxSelection(element.get("guid", ""), start, end, codings, element.get("creatingUser"), notes)


def _values(element: ET.Element, variables: dict) -> dict[str, str]:
    """Variable values of a case or source, by the variable's name made into an attribute name."""
    found = {}
    for value in element.findall("q:VariableValue", _NS):
        ref = value.find("q:VariableRef", _NS)
        key = variables.get(ref.get("targetGUID") if ref is not None else None)
        text = next((child.text for child in value if child.tag != f"{{{PROJECT_NS}}}VariableRef" and child.text), None)
        if key and text is not None:
            found[re.sub(r"\W+", "_", key.strip().lower()).strip("_") or "variable"] = text.strip()
    return found


def _source_text(archive: SafeArchive, source: ET.Element, warnings: list[str]) -> str | None:
    inline = source.find(f"{{{PROJECT_NS}}}PlainTextContent")
    if inline is not None and inline.text:
        return inline.text
    location = source.get("plainTextPath") or ""
    if not location.strip():
        warnings.append(f"source '{source.get('name')}' has neither text nor a plainTextPath; skipped")
        return None
    if location.startswith("internal://"):
        member = "sources/" + location[len("internal://") :]
    elif "://" in location or location.startswith("/") or re.match(r"^[A-Za-z]:", location):
        warnings.append(f"source '{source.get('name')}' points outside the archive ({location}); skipped")
        return None
    else:
        member = "sources/" + location.lstrip("./")
    data = archive.read(member)
    if data is None:
        warnings.append(f"source '{source.get('name') or location}': {member} is missing from the archive; skipped")
        return None
    return _plain_text(data, member, warnings)


def _plain_text(data: bytes, member: str, warnings: list[str]) -> str | None:
    """A source's text as the standard stores it (UTF-8), or UTF-16/32 by its byte-order mark, else Windows-1252, said.
    Control characters (a stray NUL) become spaces, one for one, so the selections' offsets still hold; a source that
    is mostly control characters is binary and skipped, said."""
    encoding = bom_encoding(data)
    if encoding is not None:
        text = data.decode(encoding, errors="replace")
        if encoding != "utf-8-sig":
            warnings.append(f"{member} is {encoding.upper()}, not the UTF-8 the standard asks for; read as {encoding.upper()}")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            warnings.append(f"{member} is not UTF-8; read as Windows-1252")
            text = data.decode("cp1252", errors="replace")
    controls = len(_CONTROL.findall(text))
    if controls > 0.05 * max(1, len(text)):
        warnings.append(f"{member} is binary, not text ({controls:,} control characters); skipped with its coded selections")
        return None
    if controls:
        warnings.append(f"{member}: {controls} control characters replaced by spaces (offsets unchanged)")
        text = _CONTROL.sub(" ", text)
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
