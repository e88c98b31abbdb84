"""The project database: one SQLite file behind one class.

Machine suggestions and human decisions live in separate tables. Decisions are
append-only (an undo is a new row pointing at the one it undoes) and every one
carries a coder and a timestamp. Each transcript is written in one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from qualcode.errors import ProjectError

if TYPE_CHECKING:
    from qualcode.pipeline import Suggestion
    from qualcode.transcripts import Segment, Transcript

SCHEMA_VERSION = 2
VERDICTS = ("accepted", "rejected", "added")
# Rows with no code: "reviewed" marks a segment done by a coder, "note" carries a memo,
# "undo" cancels the row named in ``undoes``.
SEGMENT_VERDICTS = ("reviewed", "note", "undo")

# Each entry upgrades the schema from version (index) to version (index + 1).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE transcripts (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        format TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        text TEXT NOT NULL,
        file_metadata TEXT NOT NULL DEFAULT '{}',
        metadata TEXT NOT NULL DEFAULT '{}',
        imported_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        transcript_id TEXT NOT NULL REFERENCES transcripts(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        speaker TEXT,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        text TEXT NOT NULL,
        coded INTEGER NOT NULL,
        retired_at TEXT
    );
    CREATE INDEX segments_by_transcript ON segments (transcript_id, position);
    CREATE TABLE suggestions (
        segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        code TEXT NOT NULL,
        confidence REAL NOT NULL,
        evidence TEXT NOT NULL,
        source TEXT NOT NULL,
        pipeline_version TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (segment_id, code)
    );
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        segment_id INTEGER NOT NULL REFERENCES segments(id),
        code TEXT,
        verdict TEXT NOT NULL,
        coder TEXT NOT NULL,
        method TEXT NOT NULL DEFAULT 'manual',
        note TEXT,
        undoes INTEGER REFERENCES decisions(id),
        batch INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX decisions_by_segment ON decisions (segment_id, coder);
    CREATE INDEX decisions_by_coder ON decisions (coder, batch);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: models learned from decisions, one row per training run.
    """
    CREATE TABLE model_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        trained_at TEXT NOT NULL,
        decisions INTEGER NOT NULL,
        summary TEXT NOT NULL,
        model BLOB NOT NULL
    );
    """,
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class StoredTranscript:
    id: str
    path: str
    format: str
    content_hash: str
    file_metadata: dict[str, str]
    metadata: dict[str, str]


@dataclass
class Entry:
    """One decision to append: a verdict on a code, or a segment-level row (code None)."""

    segment_id: int
    code: str | None
    verdict: str
    note: str | None = None
    undoes: int | None = None


@dataclass
class SegmentState:
    codes: dict[str, str] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reviewed: bool = False


@dataclass
class ImportOutcome:
    segments: int
    kept_segments: int
    retired_with_decisions: int


class Store:
    """The project's SQLite database."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise ProjectError(
                f"cannot open the project database ({exc})",
                path=self.path,
                fix="restore it from a backup, or move it away to start the project afresh",
            ) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise ProjectError(
                f"the project database has schema version {version}, newer than this qualcode understands ({SCHEMA_VERSION})",
                path=self.path,
                fix="upgrade qualcode",
            )
        if version == SCHEMA_VERSION:
            return
        if version > 0:
            # An existing project: keep a copy of it as it was before changing its schema.
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            self.backup(self.path.parent / "backups" / f"{self.path.stem}-schema{version}-{stamp}.db")
        with self.transaction() as db:
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def backup(self, target: str | Path) -> Path:
        """A consistent copy through SQLite's online backup API, written to a temporary file and renamed."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        copy = sqlite3.connect(temporary)
        try:
            self.db.backup(copy)
        finally:
            copy.close()
        os.replace(temporary, target)
        return target

    def problems(self) -> list[str]:
        """Integrity and consistency problems in the database, as sentences."""
        found = []
        integrity = [row[0] for row in self.db.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            found.extend(f"integrity: {line}" for line in integrity[:20])
        checks = {
            "segments whose transcript is missing": "SELECT COUNT(*) FROM segments WHERE transcript_id NOT IN (SELECT id FROM transcripts)",
            "suggestions whose segment is missing": "SELECT COUNT(*) FROM suggestions WHERE segment_id NOT IN (SELECT id FROM segments)",
            "decisions whose segment is missing": "SELECT COUNT(*) FROM decisions WHERE segment_id NOT IN (SELECT id FROM segments)",
            "undo rows pointing at no decision": "SELECT COUNT(*) FROM decisions WHERE undoes IS NOT NULL AND undoes NOT IN (SELECT id FROM decisions)",
            "segments whose offsets do not slice their text": (
                "SELECT COUNT(*) FROM segments g JOIN transcripts t ON t.id = g.transcript_id "
                "WHERE g.retired_at IS NULL AND substr(t.text, g.start + 1, g.end - g.start) != g.text"
            ),
        }
        for label, sql in checks.items():
            count = self.db.execute(sql).fetchone()[0]
            if count:
                found.append(f"{count} {label}")
        return found

    # -- meta -----------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- transcripts ----------------------------------------------------------------

    def transcripts(self) -> dict[str, StoredTranscript]:
        rows = self.db.execute("SELECT id, path, format, content_hash, file_metadata, metadata FROM transcripts ORDER BY id")
        return {
            row["id"]: StoredTranscript(
                row["id"], row["path"], row["format"], row["content_hash"], json.loads(row["file_metadata"]), json.loads(row["metadata"])
            )
            for row in rows
        }

    def transcript_text(self, transcript_id: str) -> str:
        row = self.db.execute("SELECT text FROM transcripts WHERE id = ?", (transcript_id,)).fetchone()
        if row is None:
            raise KeyError(transcript_id)
        return row[0]

    def set_metadata(self, transcript_id: str, metadata: dict[str, str]) -> None:
        self.db.execute(
            "UPDATE transcripts SET metadata = ?, updated_at = ? WHERE id = ?",
            (json.dumps(metadata, ensure_ascii=False, sort_keys=True), now(), transcript_id),
        )

    def save_transcript(
        self,
        transcript: "Transcript",
        suggestions: Sequence[Sequence["Suggestion"]],
        *,
        pipeline_version: str,
        path: str,
    ) -> ImportOutcome:
        """Insert or replace a transcript, its segments and their suggestions in one transaction.

        A segment whose text is unchanged keeps its id, so the decisions on it stay.
        A vanished segment that has decisions is retired (kept, hidden), not deleted.
        """
        stamp = now()
        metadata = json.dumps(transcript.metadata, ensure_ascii=False, sort_keys=True)
        file_metadata = json.dumps(transcript.file_metadata, ensure_ascii=False, sort_keys=True)
        with self.transaction() as db:
            db.execute(
                """INSERT INTO transcripts (id, path, format, content_hash, text, file_metadata, metadata, imported_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET path = excluded.path, format = excluded.format,
                       content_hash = excluded.content_hash, text = excluded.text,
                       file_metadata = excluded.file_metadata, metadata = excluded.metadata,
                       updated_at = excluded.updated_at""",
                (transcript.id, path, transcript.format, transcript.content_hash, transcript.text, file_metadata, metadata, stamp, stamp),
            )
            old: dict[str, list[int]] = defaultdict(list)
            for row in db.execute(
                "SELECT id, text FROM segments WHERE transcript_id = ? AND retired_at IS NULL ORDER BY position", (transcript.id,)
            ):
                old[row["text"]].append(row["id"])
            ids: list[int] = []
            kept = 0
            for segment in transcript.segments:
                reusable = old.get(segment.text)
                if reusable:
                    segment_id = reusable.pop(0)
                    kept += 1
                    db.execute(
                        "UPDATE segments SET position = ?, speaker = ?, start = ?, end = ?, coded = ? WHERE id = ?",
                        (segment.position, segment.speaker, segment.start, segment.end, int(segment.coded), segment_id),
                    )
                else:
                    segment_id = db.execute(
                        "INSERT INTO segments (transcript_id, position, speaker, start, end, text, coded) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (transcript.id, segment.position, segment.speaker, segment.start, segment.end, segment.text, int(segment.coded)),
                    ).lastrowid
                ids.append(segment_id)
            retired = 0
            for leftover in (segment_id for group in old.values() for segment_id in group):
                db.execute("DELETE FROM suggestions WHERE segment_id = ?", (leftover,))
                if db.execute("SELECT 1 FROM decisions WHERE segment_id = ? LIMIT 1", (leftover,)).fetchone():
                    db.execute("UPDATE segments SET retired_at = ? WHERE id = ?", (stamp, leftover))
                    retired += 1
                else:
                    db.execute("DELETE FROM segments WHERE id = ?", (leftover,))
            db.execute(
                f"DELETE FROM suggestions WHERE segment_id IN (SELECT id FROM segments WHERE transcript_id = ?)", (transcript.id,)
            )
            coded_ids = [segment_id for segment_id, segment in zip(ids, transcript.segments) if segment.coded]
            self._insert_suggestions(db, zip(coded_ids, suggestions), pipeline_version, stamp)
        return ImportOutcome(len(ids), kept, retired)

    def _insert_suggestions(self, db: sqlite3.Connection, rows: Any, pipeline_version: str, stamp: str) -> None:
        db.executemany(
            "INSERT INTO suggestions (segment_id, code, confidence, evidence, source, pipeline_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    segment_id,
                    item.code,
                    item.confidence,
                    json.dumps([evidence.to_json() for evidence in item.evidence], ensure_ascii=False),
                    item.source,
                    pipeline_version,
                    stamp,
                )
                for segment_id, items in rows
                for item in items
            ),
        )

    def replace_suggestions(self, transcript_id: str, rows: Sequence[tuple[int, Sequence["Suggestion"]]], *, pipeline_version: str) -> None:
        """Replace the suggestions of one transcript's segments in one transaction."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM suggestions WHERE segment_id IN (SELECT id FROM segments WHERE transcript_id = ?)", (transcript_id,)
            )
            self._insert_suggestions(db, rows, pipeline_version, now())

    def replace_segment_suggestions(self, rows: Sequence[tuple[int, Sequence["Suggestion"]]], *, pipeline_version: str) -> None:
        """Replace the suggestions of the given segments, in one transaction."""
        with self.transaction() as db:
            db.executemany("DELETE FROM suggestions WHERE segment_id = ?", [(segment_id,) for segment_id, _items in rows])
            self._insert_suggestions(db, rows, pipeline_version, now())

    def undecided_segments(self) -> list[sqlite3.Row]:
        """Respondent segments nobody has decided anything on yet."""
        return self.db.execute(
            """SELECT id, transcript_id, text FROM segments g WHERE coded = 1 AND retired_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.segment_id = g.id) ORDER BY transcript_id, position"""
        ).fetchall()

    # -- segments and suggestions -------------------------------------------------------

    def coded_segments(self, transcript_id: str | None = None) -> list[sqlite3.Row]:
        sql = "SELECT id, transcript_id, position, speaker, start, end, text FROM segments WHERE coded = 1 AND retired_at IS NULL"
        params: tuple[Any, ...] = ()
        if transcript_id is not None:
            sql += " AND transcript_id = ?"
            params = (transcript_id,)
        return self.db.execute(sql + " ORDER BY transcript_id, position", params).fetchall()

    def segment_numbers(self) -> dict[int, int]:
        """Each respondent segment's number (1-based) within its transcript, as shown in review and exports."""
        numbers: dict[int, int] = {}
        previous, number = None, 0
        for row in self.coded_segments():
            number = number + 1 if row["transcript_id"] == previous else 1
            previous = row["transcript_id"]
            numbers[row["id"]] = number
        return numbers

    def segments(self, transcript_id: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT id, position, speaker, start, end, text, coded FROM segments WHERE transcript_id = ? AND retired_at IS NULL ORDER BY position",
            (transcript_id,),
        ).fetchall()

    def suggestion_rows(self) -> list[sqlite3.Row]:
        return self.db.execute(
            """SELECT s.segment_id, s.code, s.confidence, s.evidence, s.source, g.transcript_id
               FROM suggestions s JOIN segments g ON g.id = s.segment_id
               WHERE g.retired_at IS NULL ORDER BY g.transcript_id, g.position, s.code"""
        ).fetchall()

    def stale_transcripts(self, pipeline_version: str) -> list[str]:
        """Transcripts with any suggestion made by other rules (a '+model-N' suffix is ignored), or never suggested."""
        rows = self.db.execute(
            """SELECT DISTINCT g.transcript_id FROM suggestions s JOIN segments g ON g.id = s.segment_id
               WHERE s.pipeline_version != ? AND substr(s.pipeline_version, 1, ?) != ?""",
            (pipeline_version, len(pipeline_version) + 1, pipeline_version + "+"),
        ).fetchall()
        stale = {row[0] for row in rows}
        if self.get_meta("pipeline_version") != pipeline_version:
            stale.update(self.transcripts())
        return sorted(stale)

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "transcripts": one("SELECT COUNT(*) FROM transcripts"),
            "segments": one("SELECT COUNT(*) FROM segments WHERE coded = 1 AND retired_at IS NULL"),
            "suggestions": one("SELECT COUNT(*) FROM suggestions"),
            "decisions": one("SELECT COUNT(*) FROM decisions"),
        }

    # -- decisions ------------------------------------------------------------------

    def add_decision(
        self,
        segment_id: int,
        code: str | None,
        verdict: str,
        *,
        coder: str,
        method: str = "manual",
        note: str | None = None,
        undoes: int | None = None,
    ) -> int:
        """Append one decision and commit it at once."""
        return self.record([Entry(segment_id, code, verdict, note, undoes)], coder=coder, method=method)[0]

    def record(self, entries: Sequence["Entry"], *, coder: str, method: str = "manual") -> list[int]:
        """Append the decisions of one action in one transaction; they share a batch id, so one undo reverts them all."""
        if not coder or not coder.strip():
            raise ValueError("a decision needs a coder name")
        for entry in entries:
            if entry.verdict in VERDICTS and not entry.code:
                raise ValueError(f"a '{entry.verdict}' decision needs a code")
            if entry.verdict not in VERDICTS and entry.verdict not in SEGMENT_VERDICTS:
                raise ValueError(f"unknown verdict '{entry.verdict}'")
        if not entries:
            return []
        stamp = now()
        ids = []
        with self.transaction() as db:
            batch = db.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM decisions").fetchone()[0]
            for entry in entries:
                cursor = db.execute(
                    "INSERT INTO decisions (segment_id, code, verdict, coder, method, note, undoes, batch, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry.segment_id, entry.code, entry.verdict, coder, method, entry.note, entry.undoes, batch, stamp),
                )
                ids.append(int(cursor.lastrowid))
        return ids

    def _undone(self, coder: str | None = None) -> set[int]:
        sql = "SELECT undoes FROM decisions WHERE undoes IS NOT NULL"
        params: tuple[Any, ...] = ()
        if coder is not None:
            sql += " AND coder = ?"
            params = (coder,)
        return {row[0] for row in self.db.execute(sql, params)}

    def coder_states(self, coder: str, segment_ids: Iterable[int] | None = None) -> dict[int, "SegmentState"]:
        """What one coder has decided on each segment, undone rows left out."""
        undone = self._undone(coder)
        sql = "SELECT id, segment_id, code, verdict, method, note FROM decisions WHERE coder = ? AND verdict != 'undo'"
        params: list[Any] = [coder]
        if segment_ids is not None:
            ids = list(segment_ids)
            if not ids:
                return {}
            sql += f" AND segment_id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        states: dict[int, SegmentState] = {}
        for row in self.db.execute(sql + " ORDER BY id", params):
            if row["id"] in undone:
                continue
            state = states.setdefault(row["segment_id"], SegmentState())
            if row["verdict"] == "reviewed":
                state.reviewed = True
            elif row["verdict"] == "note":
                state.notes.append(row["note"] or "")
            else:
                state.codes[row["code"]] = row["verdict"]
                state.methods[row["code"]] = row["method"]
        return states

    def last_batch(self, coder: str) -> list[sqlite3.Row]:
        """The coder's most recent action that has not been undone (its decisions), or []."""
        undone = self._undone(coder)
        for (batch,) in self.db.execute(
            "SELECT DISTINCT batch FROM decisions WHERE coder = ? AND verdict != 'undo' ORDER BY batch DESC", (coder,)
        ):
            rows = self.db.execute(
                "SELECT id, segment_id, code, verdict FROM decisions WHERE batch = ? AND coder = ? AND verdict != 'undo' ORDER BY id",
                (batch, coder),
            ).fetchall()
            live = [row for row in rows if row["id"] not in undone]
            if live:
                return live
        return []

    def training_decisions(self) -> int:
        """Decisions that can teach the models: the count a model run records and retraining compares with."""
        return self.db.execute("SELECT COUNT(*) FROM decisions WHERE verdict IN ('accepted', 'rejected', 'added', 'reviewed')").fetchone()[0]

    def coders(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT DISTINCT coder FROM decisions ORDER BY coder")]

    def latest_decisions(self, coder: str | None = None) -> dict[tuple[int, str, str], sqlite3.Row]:
        """Each coder's latest standing verdict per (segment, code), undone rows excluded."""
        undone = self._undone()
        sql = """SELECT d.id, d.segment_id, d.code, d.verdict, d.coder, d.method, d.created_at
                 FROM decisions d JOIN segments g ON g.id = d.segment_id
                 WHERE d.code IS NOT NULL AND d.verdict IN ('accepted', 'rejected', 'added') AND g.retired_at IS NULL"""
        params: tuple[Any, ...] = ()
        if coder is not None:
            sql += " AND d.coder = ?"
            params = (coder,)
        latest: dict[tuple[int, str, str], sqlite3.Row] = {}
        for row in self.db.execute(sql + " ORDER BY d.id", params):
            if row["id"] in undone:
                continue
            latest[(row["segment_id"], row["code"], row["coder"])] = row
        return latest
