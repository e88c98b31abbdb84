"""Writing a project as REFI-QDA: the whole project (.qdpx) and the codebook alone (.qdc)."""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from qualcode import __version__
from qualcode.analysis import Coding, attribute_names, codings
from qualcode.codebook import Codebook
from qualcode.refiqda import CODEBOOK_NS, PROJECT_NS, guid
from qualcode.store import Store
from qualcode.vocabulary import Status

SUGGESTER_USER = "qualcode suggester"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _codes_xml(parent: ET.Element, codebook: Codebook, ns: str, project: str) -> None:
    codes = ET.SubElement(parent, f"{{{ns}}}Codes")

    def add(container: ET.Element, code_id: str) -> None:
        code = codebook[code_id]
        element = ET.SubElement(container, f"{{{ns}}}Code", guid=guid(project, "code", code.id), name=code.label, isCodable="true")
        extra = [f"Include: {code.include}" if code.include else "", f"Exclude: {code.exclude}" if code.exclude else ""]
        description = "\n".join(part for part in [code.description, *extra] if part)
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


def project_qdpx(store: Store, codebook: Codebook, *, name: str, coder: str | None = None, status: str = Status.CONFIRMED) -> bytes:
    """The project as a REFI-QDA .qdpx: codebook, sources, cases with attributes, and coded selections by coder."""
    ET.register_namespace("", PROJECT_NS)
    ns = PROJECT_NS
    stamp = _now()
    found = codings(store, codebook, status=status, coder=coder)
    transcripts = store.transcripts()
    coders = sorted({who for coding in found for who in coding.coders.split(", ") if who})
    if any(coding.status == Status.SUGGESTED for coding in found):
        coders.append(SUGGESTER_USER)
    users = {who: guid(name, "user", who) for who in coders}
    root = ET.Element(f"{{{ns}}}Project", name=name, origin=f"qualcode {__version__}", creationDateTime=stamp)
    if users:
        users_element = ET.SubElement(root, f"{{{ns}}}Users")
        for who, user_guid in users.items():
            ET.SubElement(users_element, f"{{{ns}}}User", guid=user_guid, name=who)
    codebook_element = ET.SubElement(root, f"{{{ns}}}CodeBook")
    _codes_xml(codebook_element, codebook, ns, name)
    attributes = attribute_names(store)
    variables = {attribute: guid(name, "variable", attribute) for attribute in attributes}
    if variables:
        variables_element = ET.SubElement(root, f"{{{ns}}}Variables")
        for attribute, variable_guid in variables.items():
            ET.SubElement(variables_element, f"{{{ns}}}Variable", guid=variable_guid, name=attribute, typeOfVariable="Text")
    sources = {tid: guid(name, "source", tid) for tid in transcripts}
    if transcripts:
        cases = ET.SubElement(root, f"{{{ns}}}Cases")
        for tid, stored in transcripts.items():
            case = ET.SubElement(cases, f"{{{ns}}}Case", guid=guid(name, "case", tid), name=tid)
            for attribute in attributes:
                if attribute in stored.metadata:
                    value = ET.SubElement(case, f"{{{ns}}}VariableValue")
                    ET.SubElement(value, f"{{{ns}}}VariableRef", targetGUID=variables[attribute])
                    ET.SubElement(value, f"{{{ns}}}TextValue").text = stored.metadata[attribute]
            ET.SubElement(case, f"{{{ns}}}SourceRef", targetGUID=sources[tid])
    by_segment: dict[int, list[Coding]] = defaultdict(list)
    for coding in found:
        by_segment[coding.segment_id].append(coding)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        sources_element = ET.SubElement(root, f"{{{ns}}}Sources") if transcripts else root
        for tid in transcripts:
            source_guid = sources[tid]
            source = ET.SubElement(sources_element, f"{{{ns}}}TextSource", guid=source_guid, name=tid,
                                   plainTextPath=f"internal://{source_guid}.txt", creationDateTime=stamp)
            for segment in store.codable_segments(tid):
                rows = by_segment.get(segment.id)
                if not rows:
                    continue
                selection = ET.SubElement(
                    source, f"{{{ns}}}PlainTextSelection", guid=guid(name, "selection", str(segment.id)),
                    name=f"{tid} {segment.start}-{segment.end}", startPosition=str(segment.start), endPosition=str(segment.end),
                )
                for row in rows:
                    for who in (row.coders.split(", ") if row.coders else [SUGGESTER_USER]):
                        ET.SubElement(
                            ET.SubElement(selection, f"{{{ns}}}Coding", guid=guid(name, "coding", str(segment.id), row.code, who), creatingUser=users[who]),
                            f"{{{ns}}}CodeRef", targetGUID=guid(name, "code", row.code),
                        )
            zipped.writestr(f"sources/{source_guid}.txt", store.transcript_text(tid).encode("utf-8"))
        zipped.writestr("project.qde", ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return archive.getvalue()
