from __future__ import annotations

import sqlite3

import pytest
from conftest import call, old_database, open_store, write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.project.maintenance import backup, check
from qualcode.run.coding import code
from qualcode.store import SCHEMA_VERSION, Entry, Store

runner = CliRunner()


@pytest.mark.sqlite_only
def test_backup_is_a_consistent_copy(decided_project, tmp_path):
    target = call(backup, decided_project, output=tmp_path / "copy.db")
    copy = Store(target)
    with open_store(decided_project) as original:
        assert copy.counts() == original.counts() and copy.problems() == []
    result = runner.invoke(app, ["backup", "--project", str(decided_project)])
    assert result.exit_code == 0 and result.output.startswith("Backed up to ")
    assert len(list((decided_project / ".qualcode" / "backups").glob("project-*.db"))) == 1


@pytest.mark.sqlite_only
def test_check_ok_then_changed_missing_and_orphans(decided_project):
    assert call(check, decided_project).ok
    ok = runner.invoke(app, ["check", "--project", str(decided_project)])
    assert ok.output == f"OK: schema version {SCHEMA_VERSION}, 4 transcripts, database intact.\n"
    (decided_project / "transcripts" / "lead-01.txt").write_text("changed\n")
    (decided_project / "transcripts" / "lead-02.txt").unlink()
    with open_store(decided_project) as store:
        store.db.execute("PRAGMA foreign_keys = OFF")
        store.db.execute("INSERT INTO decisions (segment_id, code, verdict, coder, batch, created_at) VALUES (99999, 'x', 'accepted', 'ann', 999, 'now')")
    report = call(check, decided_project)
    assert report.problems == [
        "1 decisions whose segment is missing",
        "1 transcript files are gone: transcripts/lead-02.txt",
        "1 transcript files changed since import: transcripts/lead-01.txt",
    ]
    result = runner.invoke(app, ["check", "--project", str(decided_project)])
    assert result.exit_code == 1
    assert "Fix: run 'qualcode code' to re-import them" in result.output
    assert "Fix: restore the latest copy from .qualcode/backups/" in result.output


def test_old_schema_is_migrated_after_an_automatic_backup(tmp_path):
    path = tmp_path / ".qualcode" / "project.db"
    old = old_database(path, 1)
    old.execute("INSERT INTO transcripts VALUES ('t1', 't1.txt', 'txt', 'h', 'A: hi', '{}', '{}', 'now', 'now')")
    old.execute("INSERT INTO segments (transcript_id, position, speaker, start, end, text, coded) VALUES ('t1', 0, 'A', 3, 5, 'hi', 1)")
    old.execute("INSERT INTO decisions (segment_id, code, verdict, coder, batch, created_at) VALUES (1, 'x', 'added', 'ann', 1, 'now')")
    old.commit()
    old.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.latest_model_run() is None
    assert store.counts()["decisions"] == 1
    assert [row.id for row in store.codable_segments()] == [1]  # 'coded' became 'codable'
    store.record([Entry(1, "x", "added")], coder="bob")
    assert [row.batch for row in store.decisions()] == [1, 2]  # batch ids go on from the old ones
    [saved] = (path.parent / "backups").glob("project-schema1-*.db")
    assert sqlite3.connect(saved).execute("PRAGMA user_version").fetchone()[0] == 1


def test_failed_migration_leaves_the_old_schema(tmp_path, monkeypatch):
    from qualcode.store import schema

    path = tmp_path / "p.db"
    old_database(path, 1).close()
    monkeypatch.setattr(schema, "MIGRATIONS", [schema.MIGRATIONS[0], ["CREATE TABLE model_runs (id INTEGER)", "CREATE TABLE broken ("], []])
    try:
        Store(path)
    except Exception:
        pass
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'model_runs'").fetchone() is None


class _Exploit:
    """A pickle that would create a file when loaded: what a hostile shared database could hold."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_in_an_old_database_is_never_loaded_and_the_models_are_refitted(tmp_path):
    import pickle

    project = tmp_path / "study"
    write(project / "codebook.yaml", "codes:\n  - id: money\n    label: Money\n    keywords: [budget]\n")
    write(project / "qualcode.yaml", "retrain_after: 1\nlearn_min_examples: 2\n")
    turns = "\n\n".join(f"Q: ?\nA: {text}" for text in ["The budget was cut.", "Budget again.", "Nice weather.", "A sunny day."])
    write(project / "transcripts" / "t1.txt", turns + "\n")
    path = project / ".qualcode" / "project.db"
    old = old_database(path, 2)
    marker = tmp_path / "pwned"
    old.execute("INSERT INTO model_runs (trained_at, decisions, summary, model) VALUES ('then', 0, '{}', ?)", (pickle.dumps(_Exploit(str(marker))),))
    old.commit()
    old.close()
    call(code, project)  # migrates (after a backup), then imports
    with open_store(project) as store:
        run = store.latest_model_run(parameters=True)
        assert run is not None and run.format == "pickle-discarded" and run.parameters is None
        segments = store.codable_segments()
        for segment in segments:
            verdict = "accepted" if "udget" in segment.text else "rejected"
            store.record([Entry(segment.id, "money", verdict), Entry(segment.id, None, "reviewed")], coder="ann")
    result = call(code, project)  # a dropped run is refitted as soon as there are decisions
    assert result.retrained is not None and result.retrained.run == 2
    with open_store(project) as store:
        assert store.latest_model_run().format == "npz-1"
    assert not marker.exists()
