"""qualcode's REFI-QDA files as other tools read them: an independent reader from PyPI
(pyrefiqda, whose models are generated from the standard's schema), the stable GUIDs that
let a codebook file and a project file agree, and a codebook started from another tool's."""

from __future__ import annotations

import zipfile

import pytest
from conftest import REPO, call, open_store
from pyrefiqda import RefiProject
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.exchange.export import export
from qualcode.project import Project
from qualcode.store import Entry

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
SAMPLES = REPO.parent / "shared" / "interop" / "qdpx-samples"


def with_memos(project):
    with open_store(project) as store:
        first = store.codable_segments("lead-01")[0].id
        partner = store.codable_segments("partner-01")[0].id
        store.record([Entry(first, "", "note", "Hedges: 'we were told late'")], coder="ann")
        store.record([Entry(partner, "", "note", "Disagrees with ann here")], coder="bob")
    return project


def walk(codes, parent=None):
    for code in codes:
        yield code, parent
        yield from walk(code.code, code.name)


def test_an_independent_reader_finds_every_code_source_selection_coding_coder_and_memo(decided_project, tmp_path):
    with_memos(decided_project)
    call(export, decided_project, formats="qdpx")
    read = RefiProject.load(decided_project / "exports" / "project.qdpx", extract_dir=str(tmp_path / "extracted"))
    users = {user.guid: user.name for user in read.users.user}
    assert sorted(users.values()) == ["ann", "bob"]
    codes = {code.guid: (code.name, parent) for code, parent in walk(read.code_book.codes.code)}
    assert sorted(codes.values()) == [("Challenges", None), ("Other", None), ("Sustainability", "Challenges"), ("Timescale", "Challenges")]
    assert sorted(source.name for source in read.sources.text_source) == ["lead-01", "lead-02", "partner-01", "stakeholder-01"]

    # Every coder's coding survives in a reader that keeps one user per selection.
    found = []
    notes = {note.guid: note for note in read.notes.note}
    memos = []
    for source in read.sources.text_source:
        for selection in source.plain_text_selection:
            assert selection.name.startswith("line:")  # what line-based readers such as qc place a selection by
            who = users[selection.creating_user]
            for coding in selection.coding:
                assert users[coding.creating_user] == who
                found.append((source.name, selection.start_position, selection.end_position, codes[coding.code_ref.target_guid][0], who))
            memos += [(source.name, who, notes[ref.target_guid].plain_text_content) for ref in selection.note_ref]
    with open_store(decided_project) as store:
        offsets = {row.id: (tid, row.start, row.end) for tid in store.transcripts() for row in store.codable_segments(tid)}
        expected = sorted(
            (*offsets[segment_id], Project.open(decided_project).codebook[code].label, who)
            for (segment_id, code, who), row in store.latest_decisions().items() if row.verdict in ("accepted", "added")
        )
    assert sorted(found) == expected and len(expected) == 5
    assert sorted(memos) == [("lead-01", "ann", "Hedges: 'we were told late'"), ("partner-01", "bob", "Disagrees with ann here")]


def test_a_code_has_one_guid_in_the_codebook_file_the_project_file_and_every_later_export(decided_project, tmp_path):
    call(export, decided_project, formats="qdpx")
    first = RefiProject.load(decided_project / "exports" / "project.qdpx", extract_dir=str(tmp_path / "one"))
    qdc = (decided_project / "exports" / "codebook.qdc").read_text(encoding="utf-8")
    project_guids = {code.name: code.guid for code, _parent in walk(first.code_book.codes.code)}
    for name, guid in project_guids.items():
        assert f'guid="{guid}" name="{name}"' in qdc
    call(export, decided_project, formats="qdpx")
    again = RefiProject.load(decided_project / "exports" / "project.qdpx", extract_dir=str(tmp_path / "two"))
    assert {code.name: code.guid for code, _parent in walk(again.code_book.codes.code)} == project_guids


def test_memos_and_code_ids_come_back_through_import_qdpx(decided_project, tmp_path, monkeypatch):
    with_memos(decided_project)
    call(export, decided_project, formats="qdpx")
    monkeypatch.delenv("QUALCODE_DATABASE_URL", raising=False)  # the copy is a project of its own, in SQLite
    result = runner.invoke(app, ["import-qdpx", str(decided_project / "exports" / "project.qdpx"), "--project", str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    assert "were made from the code names" not in result.output  # qualcode's own ids are kept
    assert [code.id for code, _depth in Project.open(tmp_path / "copy").codebook.walk()] == ["challenges", "timescale", "sustainability", "other"]
    with open_store(tmp_path / "copy") as store:
        assert sorted((note.coder, note.text) for note in store.notes()) == [("ann", "Hedges: 'we were told late'"), ("bob", "Disagrees with ann here")]


def test_codebook_import_starts_a_project_from_a_qdc(decided_project, tmp_path):
    call(export, decided_project, formats="qdpx")
    target = tmp_path / "new-study"
    result = runner.invoke(app, ["codebook", "--import", str(decided_project / "exports" / "codebook.qdc"), "--project", str(target)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote {target / 'codebook.yaml'}: 4 codes from codebook.qdc")
    assert runner.invoke(app, ["codebook", "--check", "--project", str(target)]).exit_code == 0
    imported = Project.open(target).codebook
    assert [(code.id, depth, code.manual) for code, depth in imported.walk()] == [
        ("challenges", 0, False), ("timescale", 1, True), ("sustainability", 1, True), ("other", 0, True)]
    again = runner.invoke(app, ["codebook", "--import", str(decided_project / "exports" / "codebook.qdc"), "--project", str(target)])
    assert again.exit_code == 1 and "already has a codebook.yaml" in again.output
    refused = runner.invoke(app, ["import-qdpx", str(decided_project / "exports" / "codebook.qdc"), "--project", str(tmp_path / "x")])
    assert refused.exit_code == 1 and "qualcode codebook --import" in refused.output


@pytest.mark.skipif(not SAMPLES.exists(), reason="../shared/interop/qdpx-samples is not beside the project")
def test_codebook_import_takes_another_tools_project_codes(tmp_path):
    result = runner.invoke(app, ["codebook", "--import", str(SAMPLES / "nvivo-roundtrip.qdpx"), "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "made from the code names" in result.output
    with zipfile.ZipFile(SAMPLES / "nvivo-roundtrip.qdpx") as archive:
        qde = next(name for name in archive.namelist() if name.endswith(".qde"))
        expected = archive.read(qde).decode("utf-8").count("<Code ")
    assert len(Project.open(tmp_path).codebook) == expected
