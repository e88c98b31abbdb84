from __future__ import annotations

import io
import zipfile

import pytest
import xmlschema
from conftest import REPO, call, open_store

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
    xmlschema.XMLSchema(str(SCHEMAS / "Project.xsd")).validate(io.BytesIO(qde))
    xmlschema.XMLSchema(str(SCHEMAS / "Codebook.xsd")).validate(str(codebook_file))
    text = qde.decode()
    assert text.count("<PlainTextSelection ") == 4 and text.count("<Coding ") == 5
    assert 'name="ann"' in text and 'name="bob"' in text
    assert "<TextValue>lead</TextValue>" in text


def test_round_trip_keeps_every_selection_offset_code_and_coder(decided_project, tmp_path):
    call(export, decided_project, formats="qdpx")
    result = import_qdpx(path=decided_project / "exports" / "project.qdpx", project_dir=tmp_path / "copy")
    assert (result.selections, result.placed, result.unplaced, result.decisions) == (4, 4, 0, 5)
    assert result.coders == ["ann", "bob"]
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
