from __future__ import annotations

import threading

import pytest

from qualcode.errors import ProjectError
from qualcode.ingest.transcripts import Transcript, segment_text
from qualcode.store import SCHEMA_VERSION, Entry, Store
from qualcode.suggestion import Evidence, Suggestion


def make_transcript(text: str, tid: str = "t1") -> Transcript:
    transcript = Transcript(tid, path=None, format="txt", text=text, content_hash=str(hash(text)), file_metadata={"role": "lead"})
    transcript.metadata = {"role": "lead"}
    transcript.segments = segment_text(text)
    return transcript


def suggestions_for(transcript: Transcript) -> list[list[Suggestion]]:
    return [
        [Suggestion("timescale", 0.5, [Evidence("rush", "keyword", 0, 4)])] if "rush" in s.text else []
        for s in transcript.segments
        if s.codable
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    """Where a fresh database lives: an SQLite file, or an empty database on the test PostgreSQL server."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / ".qualcode" / "project.db")


@pytest.fixture
def store(location):
    with Store(location) as store:
        yield store


def test_new_database_has_the_schema(store):
    assert store.schema_version == SCHEMA_VERSION
    assert store.counts() == {"transcripts": 0, "segments": 0, "suggestions": 0, "decisions": 0}
    assert store.is_blank() and store.latest_model_run() is None


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    with Store(tmp_path / "p.db") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"transcripts", "segments", "suggestions", "decisions", "batches", "model_runs", "meta"} <= tables


def test_save_transcript_writes_segments_and_suggestions(store):
    transcript = make_transcript("Q: How?\nA: We had to rush.\nQ: And?\nA: Nothing else.\n")
    outcome = store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
    assert (outcome.segments, outcome.kept_segments) == (4, 0)
    assert [row.text for row in store.codable_segments()] == ["We had to rush.", "Nothing else."]
    [row] = store.suggestions()
    assert (row.code, row.confidence, row.source) == ("timescale", 0.5, "rules")
    assert store.counts() == {"transcripts": 1, "segments": 2, "suggestions": 1, "decisions": 0}
    assert store.transcripts()["t1"].metadata == {"role": "lead"}


def test_reimport_keeps_decisions_on_unchanged_segments_and_retires_changed_ones(store):
    first = make_transcript("Q: How?\nA: We had to rush.\nQ: And?\nA: Nothing else.\n")
    store.save_transcript(first, suggestions_for(first), pipeline_version="v1", path="t1.txt")
    rush, nothing = store.codable_segments()
    store.add_decision(rush.id, "timescale", "accepted", coder="ann")
    store.add_decision(nothing.id, "other", "added", coder="ann")

    second = make_transcript("Preamble.\n\nQ: How?\nA: We had to rush.\nQ: And?\nA: Something else entirely.\n")
    outcome = store.save_transcript(second, suggestions_for(second), pipeline_version="v1", path="t1.txt")
    assert (outcome.kept_segments, outcome.retired_with_decisions) == (3, 1)
    rows = store.codable_segments()
    assert [row.text for row in rows] == ["We had to rush.", "Something else entirely."]
    assert rows[0].id == rush.id
    assert rows[0].start == second.text.index("We had to rush.")
    latest = store.latest_decisions()
    assert list(latest) == [(rush.id, "timescale", "ann")]
    assert len(store.decisions()) == 2  # nothing deleted


def test_latest_decision_per_coder_and_undo(store):
    transcript = make_transcript("Q: How?\nA: We had to rush.\n")
    store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
    [segment] = store.codable_segments()
    first = store.add_decision(segment.id, "timescale", "accepted", coder="ann")
    second = store.add_decision(segment.id, "timescale", "rejected", coder="ann")
    store.add_decision(segment.id, "timescale", "accepted", coder="bob")
    latest = store.latest_decisions()
    assert {key: row.verdict for key, row in latest.items()} == {
        (segment.id, "timescale", "ann"): "rejected",
        (segment.id, "timescale", "bob"): "accepted",
    }
    store.add_decision(segment.id, None, "undo", coder="ann", undoes=second)
    assert store.latest_decisions("ann")[(segment.id, "timescale", "ann")].id == first
    with pytest.raises(ValueError):
        store.add_decision(segment.id, "timescale", "accepted", coder="")


def test_decisions_are_committed_immediately(store, location):
    transcript = make_transcript("Q: How?\nA: We had to rush.\n")
    store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
    [segment] = store.codable_segments()
    store.add_decision(segment.id, "timescale", "accepted", coder="ann")
    # A second connection sees it without the first closing or committing anything further.
    with Store(location) as other:
        assert [(row.coder, row.verdict) for row in other.decisions()] == [("ann", "accepted")]


def test_batch_ids_are_unique_when_coders_record_at_once(store, location):
    """Each action's batch id comes from the database's numbering: concurrent coders never share one."""
    transcript = make_transcript("Q: How?\nA: We had to rush.\n")
    store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
    [segment] = store.codable_segments()

    def coder(name: str) -> None:
        with Store(location) as own:
            for _ in range(25):
                own.record([Entry(segment.id, "timescale", "accepted"), Entry(segment.id, None, "reviewed")], coder=name)

    threads = [threading.Thread(target=coder, args=(f"coder-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = store.decisions()
    assert len(rows) == 200
    batches = {}
    for row in rows:
        batches.setdefault(row.batch, set()).add(row.coder)
    assert len(batches) == 100 and all(len(coders) == 1 for coders in batches.values())


def test_a_retried_action_is_recorded_once(store):
    """The key an action gets before its first attempt finds the first recording when a lost connection is retried."""
    transcript = make_transcript("Q: How?\nA: We had to rush.\n")
    store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
    [segment] = store.codable_segments()
    entries = [Entry(segment.id, "timescale", "accepted"), Entry(segment.id, None, "reviewed")]
    first = store._record(entries, "ann", "manual", "key-1")
    again = store._record(entries, "ann", "manual", "key-1")
    assert first == again and len(store.decisions()) == 2


def test_failed_save_leaves_no_half_transcript(store):
    transcript = make_transcript("Q: How?\nA: We had to rush.\n")
    broken = [[Suggestion("timescale", 0.5, [object()])]]  # evidence that cannot be serialised
    with pytest.raises(AttributeError):
        store.save_transcript(transcript, broken, pipeline_version="v1", path="t1.txt")
    assert store.counts() == {"transcripts": 0, "segments": 0, "suggestions": 0, "decisions": 0}


def test_stale_transcripts_follow_the_pipeline_version(store):
    transcript = make_transcript("Q: How?\nA: We had to rush.\n")
    store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
    store.set_meta("pipeline_version", "v1")
    assert store.stale_transcripts("v1") == []
    assert store.stale_transcripts("v2") == ["t1"]


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, -3])
def test_unknown_schema_versions_are_refused_naming_both(store, location, version):
    store.dialect.write_version(store.db, version)
    with pytest.raises(ProjectError) as raised:
        Store(location)
    if version > 0:
        assert f"schema version {version}, newer than this qualcode understands ({SCHEMA_VERSION}). Fix: upgrade qualcode" in str(raised.value)
    else:
        assert "schema version -3, which no qualcode writes" in str(raised.value)


@pytest.mark.sqlite_only
def test_corrupt_database_is_a_clear_error(tmp_path):
    path = tmp_path / "p.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ProjectError, match="cannot open the project database"):
        Store(path)


@pytest.mark.sqlite_only
def test_a_writer_behind_another_gets_the_lock_when_it_is_freed_and_gives_up_after_the_timeout(tmp_path):
    """SQLite's own busy handler slept up to 25 ms and more between tries; the store waits for the write lock itself
    (issue 26, item 3), and still says the database stayed busy once its timeout has passed."""
    import sqlite3
    import time

    path = tmp_path / "p.db"
    with Store(path, timeout=0.5) as store:
        transcript = make_transcript("Q: How?\nA: We had to rush.\n")
        store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
        [segment] = [row.id for row in store.codable_segments()]
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(0.2, lambda: other.execute("COMMIT")).start()
        began = time.monotonic()
        store.record([Entry(segment, "timescale", "accepted")], coder="ann")  # waits for the other writer, then writes
        assert 0.15 < time.monotonic() - began < 0.5
        assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 500  # what the rest of the connection waits
        other.execute("BEGIN IMMEDIATE")  # and now it keeps the lock
        with pytest.raises(ProjectError, match="stayed busy"):
            store.record([Entry(segment, "timescale", "rejected")], coder="ann")
        other.execute("ROLLBACK")
        other.close()
        assert [row.verdict for row in store.decisions()] == ["accepted"]


@pytest.mark.sqlite_only
def test_a_review_leaves_the_write_ahead_log_to_its_idle_moments(tmp_path, monkeypatch):
    """A commit that takes the log past 1,000 pages copies it into the database file, in the key of whichever coder
    made it; a review defers that to ``idle`` (after its screen is drawn)."""
    import shutil
    import sqlite3

    from qualcode.store import sqlite as dialect

    monkeypatch.setattr(dialect, "CHECKPOINT_COMMITS", 2000)

    def in_main_file() -> int:  # what the database file holds without its log
        shutil.copy(tmp_path / "p.db", tmp_path / "copy.db")
        with sqlite3.connect(tmp_path / "copy.db") as copy:
            return copy.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]

    with Store(tmp_path / "p.db") as store:
        transcript = make_transcript("Q: How?\nA: We had to rush.\n")
        store.save_transcript(transcript, suggestions_for(transcript), pipeline_version="v1", path="t1.txt")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        [segment] = [row.id for row in store.codable_segments()]
        store.defer_checkpoints()
        for verdict in ("accepted", "rejected") * 600:  # past SQLite's own mark of 1,000 pages
            store.record([Entry(segment, "timescale", verdict)], coder="ann")
        store.idle()  # not yet due
        assert in_main_file() == 0
        monkeypatch.setattr(dialect, "CHECKPOINT_COMMITS", 1000)
        store.idle()
        assert in_main_file() == 1200
