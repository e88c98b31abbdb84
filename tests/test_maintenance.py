from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.project import Project, backup, check, code
from qualcode.store import MIGRATIONS, SCHEMA_VERSION, Store

runner = CliRunner()


def test_backup_is_a_consistent_copy(decided_project, tmp_path):
    target = backup(project_dir=decided_project, output=tmp_path / "copy.db")
    copy = Store(target)
    original = Project.open(decided_project).store()
    assert copy.counts() == original.counts() and copy.problems() == []
    result = runner.invoke(app, ["backup", "--project", str(decided_project)])
    assert result.exit_code == 0 and result.output.startswith("Backed up to ")
    assert len(list((decided_project / ".qualcode" / "backups").glob("project-*.db"))) == 1


def test_check_ok_then_changed_missing_and_orphans(decided_project):
    assert check(project_dir=decided_project).ok
    ok = runner.invoke(app, ["check", "--project", str(decided_project)])
    assert ok.output == f"OK: schema version {SCHEMA_VERSION}, 4 transcripts, database intact.\n"
    (decided_project / "transcripts" / "lead-01.txt").write_text("changed\n")
    (decided_project / "transcripts" / "lead-02.txt").unlink()
    with Project.open(decided_project).store() as store:
        store.db.execute("PRAGMA foreign_keys = OFF")
        store.db.execute("INSERT INTO decisions (segment_id, code, verdict, coder, batch, created_at) VALUES (99999, 'x', 'accepted', 'ann', 999, 'now')")
    report = check(project_dir=decided_project)
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
    path.parent.mkdir()
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO transcripts VALUES ('t1', 't1.txt', 'txt', 'h', 'A: hi', '{}', '{}', 'now', 'now')")
    old.execute("INSERT INTO segments (transcript_id, position, speaker, start, end, text, coded) VALUES ('t1', 0, 'A', 3, 5, 'hi', 1)")
    old.execute("INSERT INTO decisions (segment_id, code, verdict, coder, batch, created_at) VALUES (1, 'x', 'added', 'ann', 1, 'now')")
    old.commit()
    old.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.db.execute("SELECT COUNT(*) FROM model_runs").fetchone()[0] == 0
    assert store.counts()["decisions"] == 1
    [saved] = (path.parent / "backups").glob("project-schema1-*.db")
    assert sqlite3.connect(saved).execute("PRAGMA user_version").fetchone()[0] == 1


def test_failed_migration_leaves_the_old_schema(tmp_path, monkeypatch):
    from qualcode import store as store_module

    path = tmp_path / "p.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", [MIGRATIONS[0], "CREATE TABLE model_runs (id INTEGER); CREATE TABLE broken ("])
    try:
        Store(path)
    except Exception:
        pass
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'model_runs'").fetchone() is None
