from __future__ import annotations

import pytest
from conftest import call, open_store, write

from qualcode.errors import SettingsError
from qualcode.run import coding as coding_module
from qualcode.run import merging
from qualcode.run.coding import code
from qualcode.settings import Settings, load_settings


def test_code_imports_segments_and_suggests(small_project):
    result = call(code, small_project)
    assert sorted(result.imported) == ["lead-01", "partner-01"]
    assert result.skipped == [] and result.unchanged == []
    assert result.segments == 3
    with open_store(small_project) as store:
        stored = store.transcripts()
        assert stored["lead-01"].metadata == {"role": "lead", "sector": "third sector"}
        assert stored["partner-01"].metadata == {"role": "partner"}
        rows = store.suggestions()
        assert [(row.transcript_id, row.code) for row in rows] == [("lead-01", "timescale"), ("lead-01", "sustainability")]
        assert store.get_meta("pipeline_version") == result.pipeline_version


def test_second_run_over_unchanged_folder_processes_nothing(small_project, monkeypatch):
    call(code, small_project)

    def fail(*args, **kwargs):
        raise AssertionError("no transcript should be processed again")

    monkeypatch.setattr(coding_module, "run_local", fail)
    monkeypatch.setattr(merging, "resuggest", fail)
    result = call(code, small_project)
    assert sorted(result.unchanged) == ["lead-01", "partner-01"]
    assert result.imported == result.updated == result.resuggested == []


def test_metadata_change_alone_updates_metadata_without_reprocessing(small_project):
    call(code, small_project)
    write(small_project / "transcripts" / "metadata.csv", "transcript,role,sector\npartner-01,partner,public\nlead-01,stakeholder,\n")
    result = call(code, small_project)
    assert sorted(result.unchanged) == ["lead-01", "partner-01"]
    with open_store(small_project) as store:
        stored = store.transcripts()
        assert stored["lead-01"].metadata == {"role": "stakeholder", "sector": "third sector"}
        assert stored["partner-01"].metadata == {"role": "partner", "sector": "public"}


def test_changed_transcript_is_reimported_keeping_decisions(small_project):
    call(code, small_project)
    with open_store(small_project) as store:
        first = store.codable_segments("lead-01")[0]
        store.add_decision(first.id, "timescale", "accepted", coder="ann")
    path = small_project / "transcripts" / "lead-01.txt"
    path.write_text(path.read_text() + "\nInterviewer: Anything else?\n\nRespondent: We need to mainstream it.\n")
    result = call(code, small_project)
    assert result.updated == ["lead-01"] and result.imported == []
    with open_store(small_project) as store:
        segments = store.codable_segments("lead-01")
        assert len(segments) == 3 and segments[0].id == first.id
        assert list(store.latest_decisions()) == [(first.id, "timescale", "ann")]
        codes = [(row.segment_id, row.code) for row in store.suggestions()]
        assert (segments[2].id, "sustainability") in codes


def test_codebook_change_resuggests_everything(small_project):
    call(code, small_project)
    codebook = small_project / "codebook.yaml"
    codebook.write_text(codebook.read_text().replace("keywords: [mainstream]", "keywords: [mainstream, housing]"))
    result = call(code, small_project)
    assert sorted(result.resuggested) == ["lead-01", "partner-01"]
    with open_store(small_project) as store:
        assert ("partner-01", "sustainability") in [(row.transcript_id, row.code) for row in store.suggestions()]
        assert store.stale_transcripts(result.pipeline_version) == []


def test_bad_files_are_skipped_and_the_batch_goes_on(small_project):
    (small_project / "transcripts" / "empty.txt").write_bytes(b"")
    (small_project / "transcripts" / "image.txt").write_bytes(bytes(range(256)) * 8)
    (small_project / "transcripts" / "notes.pdf").write_bytes(b"%PDF")
    write(small_project / "transcripts" / "norole.txt", "Q: Hi?\nA: We had to rush.\n")
    result = call(code, small_project)
    assert sorted(result.imported) == ["lead-01", "norole", "partner-01"]
    assert sorted((s.path, s.reason.split(".")[0]) for s in result.skipped) == [
        ("transcripts/empty.txt", "empty file"),
        ("transcripts/image.txt", "binary file, not text"),
        ("transcripts/notes.pdf", "unsupported format '"),
    ]
    assert "transcripts/norole.txt: no 'role' in front matter or metadata.csv; counted as 'unknown'" in result.warnings


def test_two_files_with_one_id_are_not_both_imported(small_project):
    write(small_project / "transcripts" / "lead-01.md", "Q: x?\nA: y.\n")
    result = call(code, small_project)
    assert [(s.path, s.reason) for s in result.skipped] == [
        ("transcripts/lead-01.txt", "same transcript id 'lead-01' as transcripts/lead-01.md; rename one of them")
    ]


def test_interrupted_run_leaves_no_half_imported_transcript(small_project, monkeypatch):
    """New transcripts are written a chunk per transaction: a crash after their rows went in, before their
    suggestions did, leaves none of them; a changed transcript is written alone, and whole."""
    from qualcode.store import Store
    from qualcode.store.postgres import PostgresDialect
    from qualcode.store.sqlite import SqliteDialect

    def crash_after(original):
        # Every row of the chunk is written (by executemany on SQLite, COPY on PostgreSQL), then the run dies before COMMIT.
        def written_then_crash(*args, **kwargs):
            original(*args, **kwargs)
            raise KeyboardInterrupt

        return written_then_crash

    sqlite_insert, postgres_insert = SqliteDialect.bulk_insert, PostgresDialect.bulk_insert
    monkeypatch.setattr(SqliteDialect, "bulk_insert", staticmethod(crash_after(sqlite_insert)))
    monkeypatch.setattr(PostgresDialect, "bulk_insert", crash_after(postgres_insert))
    with pytest.raises(KeyboardInterrupt):
        call(code, small_project)
    with open_store(small_project) as store:
        assert store.counts() == {"transcripts": 0, "segments": 0, "suggestions": 0, "decisions": 0}
    monkeypatch.setattr(SqliteDialect, "bulk_insert", staticmethod(sqlite_insert))
    monkeypatch.setattr(PostgresDialect, "bulk_insert", postgres_insert)
    assert sorted(call(code, small_project).imported) == ["lead-01", "partner-01"]

    path = small_project / "transcripts" / "lead-01.txt"
    path.write_text(path.read_text() + "\nInterviewer: More?\n\nRespondent: The deadline again.\n")
    original_insert = Store._insert_suggestions

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "_insert_suggestions", crash)
    with pytest.raises(KeyboardInterrupt):
        call(code, small_project)
    with open_store(small_project) as store:
        assert len(store.codable_segments("lead-01")) == 2  # the old version, whole
    monkeypatch.setattr(Store, "_insert_suggestions", original_insert)
    result = call(code, small_project)
    assert result.updated == ["lead-01"] and result.unchanged == ["partner-01"]


def test_parallel_workers_give_the_same_suggestions_as_serial(sample_project, tmp_path):
    import shutil

    parallel_project = tmp_path / "parallel"
    shutil.copytree(sample_project, parallel_project)
    write(parallel_project / "qualcode.yaml", "workers: 2\n")
    call(code, sample_project)
    call(code, parallel_project)

    def snapshot(root):
        with open_store(root) as store:
            return [(r.transcript_id, r.code, r.confidence, r.suggestion.evidence) for r in store.suggestions()]

    assert snapshot(sample_project) == snapshot(parallel_project)
    assert len(snapshot(sample_project)) > 30


def test_settings_file_is_read_and_validated(tmp_path):
    assert load_settings(tmp_path) == Settings()
    write(tmp_path / "qualcode.yaml", "interviewer_labels: [Interviewer, Facilitator]\nsegment_words: 80\ncoder: ann\n")
    settings = load_settings(tmp_path)
    assert settings.interviewer_labels == ("Interviewer", "Facilitator")
    assert (settings.segment_words, settings.coder) == (80, "ann")


@pytest.mark.parametrize(
    "text, message",
    [
        ("segment_word: 80\n", "qualcode.yaml:1: segment_word: unknown setting 'segment_word'"),
        ("segment_words: many\n", "qualcode.yaml:1: segment_words: expected a whole number of at least 10"),
        ("min_confidence: 2\n", "qualcode.yaml:1: min_confidence: expected a number from 0 to 1"),
        ("interviewer_labels: Interviewer\n", "qualcode.yaml:1: interviewer_labels: expected a list of labels"),
        ("coder: [a\n", "qualcode.yaml:2: YAML syntax error"),
    ],
)
def test_bad_settings(tmp_path, text, message):
    write(tmp_path / "qualcode.yaml", text)
    with pytest.raises(SettingsError) as raised:
        load_settings(tmp_path)
    assert str(raised.value).startswith(str(tmp_path / message.split(":")[0]) + message[len("qualcode.yaml"):])


def test_relative_names_files_as_resolving_each_would(tmp_path, monkeypatch):
    """Project.relative finds each folder's real path once; its answers are those of resolving every file alone."""
    import os
    from pathlib import Path

    from qualcode.project import Project

    root = tmp_path / "study"
    (root / "transcripts" / "deep").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for path in (root / "transcripts" / "a.txt", root / "transcripts" / "deep" / "b.txt", outside / "c.txt"):
        path.write_text("x")
    (root / "transcripts" / "link.txt").symlink_to(outside / "c.txt")  # a linked file: named where it leads
    (root / "transcripts" / "away").symlink_to(outside)  # a linked folder
    (outside / "back.txt").symlink_to(root / "transcripts" / "a.txt")
    (root / "transcripts" / "loop.txt").symlink_to(root / "transcripts" / "loop.txt")
    monkeypatch.chdir(root)
    project = Project(root, Settings())

    def resolving_alone(path: Path) -> str:
        try:
            resolved = path.resolve()
        except (RuntimeError, OSError):
            resolved = Path(os.path.abspath(path))
        try:
            return str(resolved.relative_to(root))
        except ValueError:
            return str(resolved)

    paths = [root / "transcripts" / "a.txt", root / "transcripts" / "deep" / "b.txt", root / "transcripts" / "link.txt",
             root / "transcripts" / "away" / "c.txt", root / "transcripts" / "away" / "back.txt", Path("transcripts/a.txt"),
             Path("transcripts/deep/../a.txt"), root / "transcripts" / "missing.txt", root / "transcripts" / "loop.txt", root,
             root / "transcripts" / "deep" / "..", outside / "c.txt"]
    for _twice in range(2):  # the second time from the folders already resolved
        assert [project.relative(path) for path in paths] == [resolving_alone(path) for path in paths]
    assert project.relative(root / "transcripts" / "away" / "c.txt") == str(outside / "c.txt")
    assert project.relative(Path("transcripts/deep/../a.txt")) == "transcripts/a.txt"
