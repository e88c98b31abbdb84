"""The project database behind one class: every SQL statement qualcode runs is a ``Store`` method.

Machine suggestions and human decisions live in separate tables. Decisions are
append-only (an undo is a new row pointing at the one it undoes) and every one carries a
coder, a timestamp and a batch id from the database's own numbering. Each transcript is
written in one transaction. Statements are portable (``"end"`` quoted, ``RETURNING``
rather than ``lastrowid``); what one database does differently sits in its dialect
module (``sqlite.py``, ``postgres.py``).
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from qualcode.errors import ProjectError, SegmentGone
from qualcode.ingest.transcripts import Transcript
from qualcode.store.matching import match_segments
from qualcode.store.records import (
    DecisionRow,
    Entry,
    ImportOutcome,
    ModelRun,
    Note,
    SegmentRow,
    SegmentState,
    StoredSuggestion,
    StoredTranscript,
)
from qualcode.store.schema import SCHEMA_VERSION, statements
from qualcode.store.sqlite import SqliteDialect
from qualcode.suggestion import SUGGEST_THRESHOLD, Evidence, Suggestion
from qualcode.vocabulary import Mark, Method, Source, Verdict

__all__ = [
    "SCHEMA_VERSION", "DecisionRow", "Entry", "ImportOutcome", "ModelRun", "Note", "SegmentRow", "SegmentState",
    "Store", "StoredSuggestion", "StoredTranscript", "TABLES", "now",
]

VERDICTS = frozenset(Verdict)
MARKS = frozenset(Mark)
_SEGMENT_COLUMNS = 'id, transcript_id, position, speaker, start, "end", text, codable'
_DECISION_COLUMNS = "id, segment_id, code, verdict, coder, method, note, undoes, batch, created_at"
_INSERT_SUGGESTION = ("INSERT INTO suggestions (segment_id, code, confidence, evidence, source, pipeline_version, created_at, applies) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_IN_CHUNK = 500  # values in one IN (...) list: under SQLite's and psycopg's parameter limits
_APPLIED = tuple(verdict.value for verdict in Verdict if verdict.applies)
_LEARNED_FROM = (Verdict.ACCEPTED.value, Verdict.REJECTED.value, Verdict.ADDED.value, Mark.REVIEWED.value)
# Every table a project holds, in an order that satisfies its foreign keys, with the column that orders its rows.
TABLES: dict[str, tuple[list[str], str]] = {
    "transcripts": (["id", "path", "format", "content_hash", "text", "file_metadata", "metadata", "imported_at", "updated_at"], "id"),
    "segments": (["id", "transcript_id", "position", "speaker", "start", '"end"', "text", "codable", "retired_at"], "id"),
    "suggestions": (["segment_id", "code", "confidence", "evidence", "source", "pipeline_version", "created_at", "applies"], "segment_id, code"),
    "batches": (["id", "coder", "method", "client_key", "created_at"], "id"),
    "decisions": (["id", "segment_id", "code", "verdict", "coder", "method", "note", "undoes", "batch", "created_at"], "id"),
    "model_runs": (["id", "trained_at", "decisions", "summary", "parameters", "format"], "id"),
    "meta": (["key", "value"], "key"),
}
NUMBERED_TABLES = ["segments", "batches", "decisions", "model_runs"]  # their ids come from the database's numbering
# What names a row in a message: the key columns of each table.
KEY_COLUMNS = {"transcripts": ("id",), "segments": ("id",), "suggestions": ("segment_id", "code"), "batches": ("id",), "decisions": ("id",),
               "model_runs": ("id",), "meta": ("key",)}
# The JSON a command parses, per table and column, with the parse it gets: `check` parses each the same way.
JSON_COLUMNS: dict[str, dict[str, Callable[..., Any]]] = {
    "transcripts": {"file_metadata": lambda store, raw, table, key: _json(raw, table, key),
                    "metadata": lambda store, raw, table, key: _json(raw, table, key)},
    "suggestions": {"evidence": lambda store, raw, table, key: store._evidence(raw, *key.split("/", 1))},
    "model_runs": {"summary": lambda store, raw, table, key: _json(raw, table, key)},
}

F = TypeVar("F", bound=Callable[..., Any])
# Seconds to wait before each new attempt after losing the database server: about a minute in all.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _applies(item: Suggestion) -> int | None:
    return None if item.applies is None else int(item.applies)


def _segment(row: Sequence[Any]) -> SegmentRow:
    return SegmentRow(int(row[0]), row[1], int(row[2]), row[3], int(row[4]), int(row[5]), row[6], bool(row[7]))


def _decision(row: Sequence[Any]) -> DecisionRow:
    return DecisionRow(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], int(row[8]), row[9])


def _json(text: str, table: str, key: object) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ProjectError(f"damaged JSON in table '{table}', row {key} ({exc})",
                           fix="restore the project from a backup; 'qualcode check' lists every damaged row") from None


def _operation(method: F) -> F:
    """Run a store method, turning the database errors a researcher can act on into one located message."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args: Any, **kwargs: Any) -> Any:
        delays = iter(RECONNECT_DELAYS)
        while True:
            try:
                return method(self, *args, **kwargs)
            except (ProjectError, SegmentGone):
                raise
            except Exception as exc:
                # A lost connection (server restart, network drop) is retried as a whole operation,
                # never from inside an outer transaction, which the server has already rolled back.
                if self._depth == 0 and self.dialect.connection_lost(exc):
                    delay = next(delays, None)
                    if delay is not None:
                        if self.on_retry is not None:
                            self.on_retry(delay)
                        self._reconnect(delay)
                        continue
                translated = self.dialect.translate(exc)
                if translated is None:
                    raise
                raise translated from None

    return wrapper  # type: ignore[return-value]


def dialect_for(location: str | Path, *, timeout: float = 30.0, read_only: bool = False) -> Any:
    """The dialect for a database location: a path or ``sqlite:///path`` for SQLite, ``postgresql://...`` for PostgreSQL."""
    text = str(location)
    if text.startswith(("postgresql:", "postgres:")):
        from qualcode.store.postgres import PostgresDialect

        return PostgresDialect(text, read_only=read_only)
    if text.startswith("sqlite:"):
        text = text[len("sqlite:") :]
        text = text[3:] if text.startswith("///") else text
    return SqliteDialect(Path(text), timeout=timeout, read_only=read_only)


class Store:
    """The project's database."""

    def __init__(self, location: str | Path, *, timeout: float = 30.0, create: bool = True, upgrade: bool = False,
                 missing: str = "no project database yet", read_only: bool = False) -> None:
        """Open (with ``create``, create) the database at ``location``: a path, ``sqlite:///path`` or ``postgresql://...``.

        An older schema is migrated where the dialect allows it without being asked (SQLite,
        after a backup) or with ``upgrade``; otherwise the open is refused with the fix. ``read_only`` opens it
        for reading commands: nothing is written, not even a migration.
        """
        self.read_only = read_only
        self._location, self._timeout = location, timeout
        self.dialect = dialect_for(location, timeout=timeout, read_only=read_only)
        self.path = getattr(self.dialect, "path", None)
        self._depth = 0
        # Told the seconds before each new attempt when the server was lost, so a screen can say so.
        self.on_retry: Callable[[float], None] | None = None
        self.migrated_from: int | None = None  # the schema version found, when opening migrated it
        if not create and not self.dialect.exists():
            raise ProjectError(missing, path=self.dialect.describe(), fix="run 'qualcode code' first")
        try:
            # Creating or migrating a database is done by one process at a time (SQLite: a lock file beside it).
            with self.dialect.opening():
                self.db = self.dialect.connect()
                if not create and self.schema_version == 0 and self.dialect.is_empty(self.db):
                    self.db.close()
                    raise ProjectError(missing, path=self.dialect.describe(), fix="run 'qualcode code' first")
                self._open(upgrade=upgrade)
        except ProjectError:
            raise
        except Exception as exc:
            translated = self.dialect.translate(exc, opening=True)
            if translated is None:
                raise
            raise translated from None

    def close(self) -> None:
        self.db.close()

    def _reconnect(self, delay: float) -> None:
        time.sleep(delay)
        try:
            self.db.close()
        except Exception:  # the old connection is already broken; closing it may fail too
            pass
        try:
            self.db = self.dialect.connect()
        except Exception as exc:
            if not self.dialect.connection_lost(exc):
                raise
            # Still unreachable: keep a closed connection so the next attempt fails fast and waits again.

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute(self.dialect.sql(sql), params)

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.dialect.executemany(self.db, self.dialect.sql(sql), rows)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._q(sql, params).fetchone()
        return row[0] if row else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.dialect.begin(self.db, write=True)
        self._depth = 1
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.dialect.rollback(self.db)
            raise
        finally:
            self._depth = 0

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction, so an analysis sees one consistent state while others write."""
        if self._depth:
            yield
            return
        self.dialect.begin(self.db, write=False)
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self.dialect.rollback(self.db)

    @property
    def schema_version(self) -> int:
        return self.dialect.read_version(self.db)

    def _open(self, *, upgrade: bool) -> None:
        version = self.schema_version
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise ProjectError(
                f"the project database has schema version {version}, newer than this qualcode understands ({SCHEMA_VERSION})",
                path=self.dialect.describe(),
                fix="upgrade qualcode",
            )
        if version < 0:
            raise ProjectError(f"the project database has schema version {version}, which no qualcode writes", path=self.dialect.describe(),
                               fix="restore the database from a backup")
        if version == 0 and not self.dialect.is_empty(self.db):
            raise ProjectError("this database holds tables but no qualcode schema version", path=self.dialect.describe(),
                               fix="point qualcode at its own project database, or at an empty one")
        if self.read_only and self.dialect.auto_migrate and version > 0 and self.dialect.writable():
            # A project this qualcode has not opened yet: migrated once by a writing connection, as any command would.
            Store(self._location, timeout=self._timeout, create=False).close()
            return
        if self.read_only and self.dialect.auto_migrate:
            raise ProjectError(
                f"the project database has schema version {version}; this qualcode reads {SCHEMA_VERSION}, and a reading command changes nothing",
                path=self.dialect.describe(),
                fix="run a writing command once where the project may be written (e.g. 'qualcode code'), or 'qualcode db upgrade' on a server",
            )
        if version > 0 and not (upgrade or self.dialect.auto_migrate):
            raise ProjectError(
                f"the project database has schema version {version}; this qualcode needs {SCHEMA_VERSION}",
                path=self.dialect.describe(),
                fix="run 'qualcode db upgrade' once (it backs up nothing: take 'qualcode backup' first)",
            )
        self.migrate()

    def migrate(self) -> int:
        """Bring the schema to this qualcode's version in one transaction, under the database's lock; returns the old version."""
        version = self.schema_version
        if version == SCHEMA_VERSION:
            return version
        self.migrated_from = version
        if version > 0 and self.dialect.name == "sqlite":
            # An existing project: keep a copy of it as it was before changing its schema.
            self.dialect.backup(self.db, self.dialect.backup_name(version))
        with self.transaction():
            self.dialect.lock_schema(self.db)
            version = self.schema_version  # another process may have migrated while this one waited
            for statement in statements(version, SCHEMA_VERSION, self.dialect.name):
                self.db.execute(statement)
            self.dialect.write_version(self.db, SCHEMA_VERSION)
        return version

    @_operation
    def backup(self, target: str | Path) -> Path:
        return self.dialect.backup(self.db, Path(target))

    def problems(self) -> list[str]:
        """Integrity and consistency problems in the database, as sentences: each check runs even when another
        fails, so a damaged page, a damaged JSON value and an orphan row are all reported in one reading."""
        found: list[str] = []
        for check in (self._integrity, self._orphans, self._damaged_rows):
            try:
                found.extend(check())
            except ProjectError as exc:
                found.append(exc.message)
        return list(dict.fromkeys(found))  # a damaged page fails several checks with one message

    @_operation
    def _integrity(self) -> list[str]:
        return list(self.dialect.integrity(self.db))

    @_operation
    def _orphans(self) -> list[str]:
        found = []
        checks = {
            "segments whose transcript is missing": "SELECT COUNT(*) FROM segments WHERE transcript_id NOT IN (SELECT id FROM transcripts)",
            "suggestions whose segment is missing": "SELECT COUNT(*) FROM suggestions WHERE segment_id NOT IN (SELECT id FROM segments)",
            "decisions whose segment is missing": "SELECT COUNT(*) FROM decisions WHERE segment_id NOT IN (SELECT id FROM segments)",
            "undo rows pointing at no decision": "SELECT COUNT(*) FROM decisions WHERE undoes IS NOT NULL AND undoes NOT IN (SELECT id FROM decisions)",
            "segments whose offsets do not slice their text": (
                'SELECT COUNT(*) FROM segments g JOIN transcripts t ON t.id = g.transcript_id '
                'WHERE g.retired_at IS NULL AND substr(t.text, g.start + 1, g."end" - g.start) != g.text'
            ),
        }
        for label, sql in checks.items():
            count = self._one(sql)
            if count:
                found.append(f"{count} {label}")
        return found

    @_operation
    def _damaged_rows(self) -> list[str]:
        """Every row of every table read in full, and each JSON value parsed as the commands parse it."""
        found: list[str] = []
        for table, (columns, _order) in TABLES.items():
            wanted = JSON_COLUMNS.get(table, {})
            key_at = [columns.index(column) for column in KEY_COLUMNS[table]]
            for row in self.table_rows(table):
                for column, parse in wanted.items():
                    try:
                        parse(self, row[columns.index(column)], table, "/".join(str(row[index]) for index in key_at))
                    except ProjectError as exc:
                        if len(found) < 20:
                            found.append(f"{exc.message} (column {column})")
        return found

    @contextmanager
    def code_lock(self, holder: str) -> Iterator[None]:
        """Only one `qualcode code` run writes at a time; a second is refused with the holder's name."""
        with self.dialect.code_lock(holder, self):
            yield

    # -- meta -----------------------------------------------------------------------

    @_operation
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return default if value is None else value

    @_operation
    def set_meta(self, key: str, value: str) -> None:
        self._q("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # -- transcripts ----------------------------------------------------------------

    @_operation
    def transcripts(self) -> dict[str, StoredTranscript]:
        rows = self._q("SELECT id, path, format, content_hash, file_metadata, metadata FROM transcripts ORDER BY id").fetchall()
        return {
            row[0]: StoredTranscript(row[0], row[1], row[2], row[3], _json(row[4], "transcripts", row[0]), _json(row[5], "transcripts", row[0]))
            for row in rows
        }

    @_operation
    def transcript_states(self, ids: Sequence[str]) -> dict[str, StoredTranscript]:
        """The stored transcripts among ``ids`` (content hash and metadata, not text), looked up a chunk at a time."""
        found: dict[str, StoredTranscript] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = self._q(
                f"SELECT id, path, format, content_hash, file_metadata, metadata FROM transcripts WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            ).fetchall()
            for row in rows:
                found[row[0]] = StoredTranscript(row[0], row[1], row[2], row[3], _json(row[4], "transcripts", row[0]), _json(row[5], "transcripts", row[0]))
        return found

    @_operation
    def transcript_text(self, transcript_id: str) -> str:
        row = self._q("SELECT text FROM transcripts WHERE id = ?", (transcript_id,)).fetchone()
        if row is None:
            raise KeyError(transcript_id)
        return row[0]

    @_operation
    def set_metadata(self, transcript_id: str, metadata: dict[str, str]) -> None:
        self._q(
            "UPDATE transcripts SET metadata = ?, updated_at = ? WHERE id = ?",
            (json.dumps(metadata, ensure_ascii=False), now(), transcript_id)  # in metadata.csv's column order,
        )

    @_operation
    def save_transcript(self, transcript: Transcript, suggestions: Sequence[Sequence[Suggestion]], *, pipeline_version: str, path: str) -> ImportOutcome:
        """Insert or replace a transcript, its segments and their suggestions in one transaction.

        A segment whose text is unchanged keeps its id, so the decisions on it stay; which old segment a new one is
        follows order and neighbourhood, not text alone (``matching.py``). A vanished segment that has decisions
        is retired (kept, hidden), not deleted; so is each of the old segments a new one could not be told from.
        """
        stamp = now()
        metadata = json.dumps(transcript.metadata, ensure_ascii=False)
        file_metadata = json.dumps(transcript.file_metadata, ensure_ascii=False, sort_keys=True)
        with self.transaction():
            self._q(
                """INSERT INTO transcripts (id, path, format, content_hash, text, file_metadata, metadata, imported_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET path = excluded.path, format = excluded.format,
                       content_hash = excluded.content_hash, text = excluded.text,
                       file_metadata = excluded.file_metadata, metadata = excluded.metadata,
                       updated_at = excluded.updated_at""",
                (transcript.id, path, transcript.format, transcript.content_hash, transcript.text, file_metadata, metadata, stamp, stamp),
            )
            rows = self._q(
                "SELECT id, text FROM segments WHERE transcript_id = ? AND retired_at IS NULL ORDER BY position", (transcript.id,)
            ).fetchall()
            old_ids = [int(row[0]) for row in rows]
            history: dict[int, list[tuple]] = defaultdict(list)
            for segment_id, coder, code, verdict, note in self._q(
                "SELECT d.segment_id, d.coder, d.code, d.verdict, d.note FROM decisions d JOIN segments g ON g.id = d.segment_id "
                "WHERE g.transcript_id = ? AND g.retired_at IS NULL ORDER BY d.id", (transcript.id,)
            ).fetchall():
                history[int(segment_id)].append((coder, code, verdict, note))
            matching = match_segments([row[1] for row in rows], [segment.text for segment in transcript.segments],
                                      [tuple(history.get(segment_id, ())) for segment_id in old_ids])
            ids: list[int] = []
            for index, segment in enumerate(transcript.segments):
                reused = matching.reused.get(index)
                if reused is not None:
                    segment_id = old_ids[reused]
                    self._q(
                        'UPDATE segments SET position = ?, speaker = ?, start = ?, "end" = ?, codable = ? WHERE id = ?',
                        (segment.position, segment.speaker, segment.start, segment.end, int(segment.codable), segment_id),
                    )
                else:
                    segment_id = int(self._one(
                        'INSERT INTO segments (transcript_id, position, speaker, start, "end", text, codable) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id',
                        (transcript.id, segment.position, segment.speaker, segment.start, segment.end, segment.text, int(segment.codable)),
                    ))
                ids.append(segment_id)
            kept = len(matching.reused)
            leftovers = set(old_ids) - {old_ids[index] for index in matching.reused.values()}
            retired = self._retire(sorted(leftovers))
            self._q("DELETE FROM suggestions WHERE segment_id IN (SELECT id FROM segments WHERE transcript_id = ?)", (transcript.id,))
            codable_ids = [segment_id for segment_id, segment in zip(ids, transcript.segments) if segment.codable]
            self._insert_suggestions(zip(codable_ids, suggestions), pipeline_version, stamp)
        return ImportOutcome(len(ids), kept, retired, len(matching.ambiguous))

    @_operation
    def insert_transcripts(self, batch: Sequence[tuple[Transcript, Sequence[Sequence[Suggestion]], str, str]]) -> list[str]:
        """New transcripts (transcript, suggestions per codable segment, path, pipeline version) with their segments and
        suggestions, in one transaction. A transcript already in the database is left as it is, so merging the same
        results twice writes nothing twice. Returns the ids inserted.
        """
        if not batch:
            return []
        stamp = now()
        with self.transaction():
            ids = [transcript.id for transcript, _suggestions, _path, _version in batch]
            placeholders = ", ".join("?" * len(ids))
            present = {row[0] for row in self._q(f"SELECT id FROM transcripts WHERE id IN ({placeholders})", ids).fetchall()}
            fresh = []
            for item in batch:
                if item[0].id not in present:
                    present.add(item[0].id)  # a batch naming one transcript twice inserts it once
                    fresh.append(item)
            transcripts = [
                (t.id, path, t.format, t.content_hash, t.text, json.dumps(t.file_metadata, ensure_ascii=False, sort_keys=True),
                 json.dumps(t.metadata, ensure_ascii=False), stamp, stamp)
                for t, _suggestions, path, _version in fresh
            ]
            segments = [
                (t.id, s.position, s.speaker, s.start, s.end, s.text, int(s.codable)) for t, _suggestions, _path, _version in fresh for s in t.segments
            ]
            suggestions = [
                (t.id, segment.position, item.code, item.confidence, json.dumps([e.to_json() for e in item.evidence], ensure_ascii=False),
                 str(item.source), version, stamp, _applies(item))
                for t, per_segment, _path, version in fresh
                for segment, items in zip([s for s in t.segments if s.codable], per_segment)
                for item in items
            ]
            self.dialect.bulk_insert(self, transcripts, segments, suggestions)
        return [item[0].id for item in fresh]

    def _bulk_insert(self, transcripts: list[tuple], segments: list[tuple], suggestions: list[tuple]) -> None:
        """The portable way in for new transcripts: many rows per statement, segment ids read back by position."""
        self._many("INSERT INTO transcripts (id, path, format, content_hash, text, file_metadata, metadata, imported_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", transcripts)
        self._many('INSERT INTO segments (transcript_id, position, speaker, start, "end", text, codable) VALUES (?, ?, ?, ?, ?, ?, ?)', segments)
        ids = [row[0] for row in transcripts]
        segment_id: dict[tuple[str, int], int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for sid, tid, position in self._q(
                f"SELECT id, transcript_id, position FROM segments WHERE transcript_id IN ({', '.join('?' * len(chunk))}) AND retired_at IS NULL", chunk
            ).fetchall():
                segment_id[(tid, int(position))] = int(sid)
        self._many(_INSERT_SUGGESTION, ((segment_id[(tid, position)], *rest) for tid, position, *rest in suggestions))

    def _retire(self, leftovers: Iterable[int]) -> int:
        """Remove segments that vanished from their file: kept but hidden when they carry decisions."""
        retired = 0
        stamp = now()
        for leftover in leftovers:
            self._q("DELETE FROM suggestions WHERE segment_id = ?", (leftover,))
            if self._q("SELECT 1 FROM decisions WHERE segment_id = ? LIMIT 1", (leftover,)).fetchone():
                self._q("UPDATE segments SET retired_at = ? WHERE id = ?", (stamp, leftover))
                retired += 1
            else:
                self._q("DELETE FROM segments WHERE id = ?", (leftover,))
        return retired

    def _insert_suggestions(self, rows: Iterable[tuple[int, Sequence[Suggestion]]], pipeline_version: str, stamp: str) -> None:
        self._many(
            _INSERT_SUGGESTION,
            (
                (
                    segment_id,
                    item.code,
                    item.confidence,
                    json.dumps([evidence.to_json() for evidence in item.evidence], ensure_ascii=False),
                    str(item.source),
                    pipeline_version,
                    stamp,
                    _applies(item),
                )
                for segment_id, items in rows
                for item in items
            ),
        )

    @_operation
    def replace_suggestions(self, transcript_id: str, rows: Sequence[tuple[int, Sequence[Suggestion]]], *, pipeline_version: str) -> None:
        """Replace the suggestions of one transcript's segments in one transaction."""
        with self.transaction():
            self._q("DELETE FROM suggestions WHERE segment_id IN (SELECT id FROM segments WHERE transcript_id = ?)", (transcript_id,))
            self._insert_suggestions(rows, pipeline_version, now())

    @_operation
    def replace_segment_suggestions(self, rows: Sequence[tuple[int, Sequence[Suggestion]]], *, pipeline_version: str) -> None:
        """Replace the suggestions of the given segments, in one transaction."""
        with self.transaction():
            self._many("DELETE FROM suggestions WHERE segment_id = ?", [(segment_id,) for segment_id, _items in rows])
            self._insert_suggestions(rows, pipeline_version, now())

    # -- segments and suggestions -------------------------------------------------------

    @_operation
    def undecided_segments(self) -> list[SegmentRow]:
        """Respondent segments nobody has decided anything on yet."""
        rows = self._q(
            f"""SELECT {_SEGMENT_COLUMNS} FROM segments g WHERE codable = 1 AND retired_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.segment_id = g.id) ORDER BY transcript_id, position"""
        ).fetchall()
        return [_segment(row) for row in rows]

    @_operation
    def codable_segments(self, transcript_id: str | None = None) -> list[SegmentRow]:
        """Respondent segments (to be coded), in transcript and position order."""
        sql = f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE codable = 1 AND retired_at IS NULL"
        params: tuple[Any, ...] = ()
        if transcript_id is not None:
            sql += " AND transcript_id = ?"
            params = (transcript_id,)
        return [_segment(row) for row in self._q(sql + " ORDER BY transcript_id, position", params).fetchall()]

    def segment_numbers(self) -> dict[int, int]:
        """Each respondent segment's number (1-based) within its transcript, as shown in review and exports."""
        numbers: dict[int, int] = {}
        previous, number = None, 0
        for row in self.codable_segments():
            number = number + 1 if row.transcript_id == previous else 1
            previous = row.transcript_id
            numbers[row.id] = number
        return numbers

    @_operation
    def segments(self, transcript_id: str) -> list[SegmentRow]:
        """Every current segment of a transcript, interviewer turns included, in order."""
        rows = self._q(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE transcript_id = ? AND retired_at IS NULL ORDER BY position", (transcript_id,)
        ).fetchall()
        return [_segment(row) for row in rows]

    @_operation
    def suggestions(self, *, evidence: bool = True, segment_ids: Sequence[int] | None = None) -> list[StoredSuggestion]:
        """Current suggestions, in transcript, position and code order: all of them, or those of ``segment_ids``.

        Without ``evidence`` the evidence column is not read at all, which is most of the work
        when a queue or a table only needs codes and confidences.
        """
        sql = f"""SELECT s.segment_id, s.code, s.confidence, {"s.evidence" if evidence else "''"}, s.source, g.transcript_id, s.pipeline_version,
                         s.applies FROM suggestions s JOIN segments g ON g.id = s.segment_id WHERE g.retired_at IS NULL"""
        if segment_ids is None:
            rows = self._q(sql + " ORDER BY g.transcript_id, g.position, s.code").fetchall()
        else:
            rows = []
            for start in range(0, len(segment_ids), 500):
                chunk = list(segment_ids[start : start + 500])
                rows += self._q(sql + f" AND s.segment_id IN ({', '.join('?' * len(chunk))}) ORDER BY g.transcript_id, g.position, s.code",
                                chunk).fetchall()
        found = []
        for segment_id, code, confidence, raw, source, transcript_id, version, applies in rows:
            parsed = self._evidence(raw, segment_id, code) if evidence else []
            suggestion = Suggestion(code, float(confidence), parsed, source, None if applies is None else bool(applies))
            found.append(StoredSuggestion(int(segment_id), transcript_id, suggestion, version))
        return found

    @_operation
    def confidences(self, transcript_id: str) -> list[tuple[int, str, float]]:
        """(segment, code, confidence) of one transcript's current suggestions: what a table of codings needs, and no more."""
        return [
            (int(row[0]), row[1], float(row[2]))
            for row in self._q(
                "SELECT s.segment_id, s.code, s.confidence FROM suggestions s JOIN segments g ON g.id = s.segment_id "
                "WHERE g.transcript_id = ? AND g.retired_at IS NULL", (transcript_id,)
            ).fetchall()
        ]

    @staticmethod
    def _evidence(raw: str, segment_id: int, code: str) -> list[Evidence]:
        items = _json(raw, "suggestions", f"{segment_id}/{code}")
        try:
            return [Evidence.from_json(item) for item in items]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProjectError(f"damaged evidence in table 'suggestions', row {segment_id}/{code} ({exc})",
                               fix="run 'qualcode code' again to recompute the suggestions, or restore a backup") from None

    @_operation
    def suggestion_reach(self, rollup: dict[str, list[str]], *, min_confidence: float = 0.0) -> list[tuple[str, str, int]]:
        """Per (code, transcript), the segments suggested that code or any code it counts (``rollup[code]``: the code
        and its descendants), each segment once, where the machine says the code applies (``Suggestion.says_yes``).
        Counted by the database, so memory does not grow with the corpus."""
        pairs = [(code, member) for code, members in rollup.items() for member in members]
        found: list[tuple[str, str, int]] = []
        for start in range(0, len(pairs), 4000):  # bounded parameters per statement
            chunk = pairs[start : start + 4000]
            values = ", ".join("(?, ?)" for _ in chunk)
            found.extend(
                (row[0], row[1], int(row[2]))
                for row in self._q(
                    f"""WITH rollup (code, member) AS (VALUES {values})
                        SELECT r.code, g.transcript_id, COUNT(DISTINCT s.segment_id)
                        FROM suggestions s JOIN segments g ON g.id = s.segment_id JOIN rollup r ON r.member = s.code
                        WHERE g.retired_at IS NULL AND s.confidence >= ?
                          AND (s.applies = 1 OR (s.applies IS NULL AND (s.source = ? OR s.confidence >= ?)))
                        GROUP BY r.code, g.transcript_id""",
                    [value for pair in chunk for value in pair] + [min_confidence, Source.RULES.value, SUGGEST_THRESHOLD],
                ).fetchall()
            )
        return found

    @_operation
    def attribute_values(self, attributes: Sequence[str]) -> dict[str, tuple[str | None, ...]]:
        """Each transcript's values of the given attributes (None where it has none), without keeping whole metadata."""
        values: dict[str, tuple[str | None, ...]] = {}
        for transcript_id, metadata in self._q("SELECT id, metadata FROM transcripts ORDER BY id").fetchall():
            parsed = _json(metadata, "transcripts", transcript_id)
            values[transcript_id] = tuple(parsed.get(attribute) for attribute in attributes)
        return values

    @_operation
    def stale_transcripts(self, pipeline_version: str) -> list[str]:
        """Transcripts with any suggestion made by other rules (a '+model-N' suffix is ignored), or never suggested."""
        rows = self._q(
            """SELECT DISTINCT g.transcript_id FROM suggestions s JOIN segments g ON g.id = s.segment_id
               WHERE s.pipeline_version != ? AND substr(s.pipeline_version, 1, ?) != ?""",
            (pipeline_version, len(pipeline_version) + 1, pipeline_version + "+"),
        ).fetchall()
        stale = {row[0] for row in rows}
        if self.get_meta("pipeline_version") != pipeline_version:
            stale.update(self.transcripts())
        return sorted(stale)

    @_operation
    def counts(self) -> dict[str, int]:
        return {
            "transcripts": self._one("SELECT COUNT(*) FROM transcripts"),
            "segments": self._one("SELECT COUNT(*) FROM segments WHERE codable = 1 AND retired_at IS NULL"),
            "suggestions": self._one("SELECT COUNT(*) FROM suggestions"),
            "decisions": self._one("SELECT COUNT(*) FROM decisions"),
        }

    # -- decisions ------------------------------------------------------------------

    def add_decision(
        self,
        segment_id: int,
        code: str | None,
        verdict: str,
        *,
        coder: str,
        method: str = Method.MANUAL,
        note: str | None = None,
        undoes: int | None = None,
    ) -> int:
        """Append one decision and commit it at once."""
        return self.record([Entry(segment_id, code, verdict, note, undoes)], coder=coder, method=method)[0]

    def record(self, entries: Sequence[Entry], *, coder: str, method: str = Method.MANUAL) -> list[int]:
        """Append the decisions of one action in one transaction; they share a batch id, so one undo reverts them all.

        The action gets a key of its own before the first attempt: when a lost connection is
        retried, a recording that did reach the database is found by its key, not made twice.
        """
        if not coder or not coder.strip():
            raise ValueError("a decision needs a coder name")
        for entry in entries:
            if entry.verdict in VERDICTS and not entry.code:
                raise ValueError(f"a '{entry.verdict}' decision needs a code")
            if entry.verdict not in VERDICTS and entry.verdict not in MARKS:
                raise ValueError(f"unknown verdict '{entry.verdict}'")
        if not entries:
            return []
        return self._record(entries, coder, str(method), uuid.uuid4().hex)

    @_operation
    def _record(self, entries: Sequence[Entry], coder: str, method: str, key: str) -> list[int]:
        stamp = now()
        with self.transaction():
            # A re-import may have replaced the segment since it was read (a coder's screen, a batch): say so, record nothing.
            wanted = sorted({entry.segment_id for entry in entries if entry.verdict != Mark.UNDO})
            if wanted:
                current = {int(row[0]) for row in self._q(
                    f"SELECT id FROM segments WHERE retired_at IS NULL AND id IN ({', '.join('?' * len(wanted))})", wanted).fetchall()}
                if len(current) < len(wanted):
                    raise SegmentGone([segment_id for segment_id in wanted if segment_id not in current])
            batch = self._one(
                "INSERT INTO batches (coder, method, client_key, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (client_key) DO NOTHING RETURNING id",
                (coder, method, key, stamp),
            )
            if batch is None:
                existing = self._one("SELECT id FROM batches WHERE client_key = ?", (key,))
                return [int(row[0]) for row in self._q("SELECT id FROM decisions WHERE batch = ? ORDER BY id", (existing,)).fetchall()]
            ids = []
            for entry in entries:
                ids.append(int(self._one(
                    "INSERT INTO decisions (segment_id, code, verdict, coder, method, note, undoes, batch, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (entry.segment_id, entry.code, str(entry.verdict), coder, method, entry.note, entry.undoes, batch, stamp),
                )))
        return ids

    def _undone(self, coder: str | None = None) -> set[int]:
        sql = "SELECT undoes FROM decisions WHERE undoes IS NOT NULL"
        params: tuple[Any, ...] = ()
        if coder is not None:
            sql += " AND coder = ?"
            params = (coder,)
        return {int(row[0]) for row in self._q(sql, params).fetchall()}

    @_operation
    def coder_states(self, coder: str, segment_ids: Iterable[int] | None = None) -> dict[int, SegmentState]:
        """What one coder has decided on each segment, undone rows left out."""
        undone = self._undone(coder)
        sql = f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE coder = ? AND verdict != 'undo'"
        params: list[Any] = [coder]
        if segment_ids is not None:
            ids = list(segment_ids)
            if not ids:
                return {}
            sql += f" AND segment_id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        states: dict[int, SegmentState] = {}
        for row in self._q(sql + " ORDER BY id", params).fetchall():
            decision = _decision(row)
            if decision.id in undone:
                continue
            state = states.setdefault(decision.segment_id, SegmentState())
            if decision.verdict == Mark.REVIEWED:
                state.reviewed = True
            elif decision.verdict == Mark.NOTE:
                state.notes.append(decision.note or "")
            elif decision.code is not None:
                state.codes[decision.code] = decision.verdict
                state.methods[decision.code] = decision.method
        return states

    def reviewed_segments(self) -> set[int]:
        """The segments some coder has marked reviewed (and not undone)."""
        reviewed: set[int] = set()
        for coder in self.coders():
            reviewed.update(segment_id for segment_id, state in self.coder_states(coder).items() if state.reviewed)
        return reviewed

    @_operation
    def last_batch(self, coder: str) -> list[DecisionRow]:
        """The coder's most recent action that has not been undone (its decisions), or []."""
        undone = self._undone(coder)
        batches = self._q("SELECT DISTINCT batch FROM decisions WHERE coder = ? AND verdict != 'undo' ORDER BY batch DESC", (coder,)).fetchall()
        for (batch,) in batches:
            rows = self._q(
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE batch = ? AND coder = ? AND verdict != 'undo' ORDER BY id", (batch, coder)
            ).fetchall()
            live = [decision for decision in map(_decision, rows) if decision.id not in undone]
            if live:
                return live
        return []

    @_operation
    def training_decisions(self) -> int:
        """Decisions that can teach the models: the count a model run records and retraining compares with."""
        placeholders = ", ".join("?" * len(_LEARNED_FROM))
        return int(self._one(f"SELECT COUNT(*) FROM decisions WHERE verdict IN ({placeholders})", _LEARNED_FROM))

    @_operation
    def coders(self) -> list[str]:
        return [row[0] for row in self._q("SELECT DISTINCT coder FROM decisions ORDER BY coder").fetchall()]

    @_operation
    def latest_decisions(self, coder: str | None = None) -> dict[tuple[int, str, str], DecisionRow]:
        """Each coder's latest standing verdict per (segment, code), undone rows excluded."""
        undone = self._undone()
        columns = ", ".join(f"d.{column.strip()}" for column in _DECISION_COLUMNS.split(","))
        sql = f"""SELECT {columns} FROM decisions d JOIN segments g ON g.id = d.segment_id
                  WHERE d.code IS NOT NULL AND d.verdict IN (?, ?, ?) AND g.retired_at IS NULL"""
        params: list[Any] = [Verdict.ACCEPTED.value, Verdict.REJECTED.value, Verdict.ADDED.value]
        if coder is not None:
            sql += " AND d.coder = ?"
            params.append(coder)
        latest: dict[tuple[int, str, str], DecisionRow] = {}
        for row in self._q(sql + " ORDER BY d.id", params).fetchall():
            decision = _decision(row)
            if decision.id in undone or decision.code is None:
                continue
            latest[(decision.segment_id, decision.code, decision.coder)] = decision
        return latest

    @_operation
    def decisions(self, coder: str | None = None) -> list[DecisionRow]:
        """Every decision row, oldest first (undo rows and undone rows included)."""
        sql = f"SELECT {_DECISION_COLUMNS} FROM decisions"
        params: tuple[Any, ...] = ()
        if coder is not None:
            sql += " WHERE coder = ?"
            params = (coder,)
        return [_decision(row) for row in self._q(sql + " ORDER BY id", params).fetchall()]

    @_operation
    def notes(self, coder: str | None = None) -> list[Note]:
        """Memos written in review that have not been undone, oldest first."""
        undone = self._undone()
        return [
            Note(decision.id, decision.segment_id, decision.coder, decision.note or "", decision.created_at)
            for decision in self.decisions(coder)
            if decision.verdict == Mark.NOTE and decision.id not in undone and (decision.note or "").strip()
        ]

    # -- whole tables, for moving a project between databases ------------------------------

    @_operation
    def table_rows(self, table: str) -> Iterator[tuple[Any, ...]]:
        """Every row of one of the project's tables, in a fixed order (the schema version is left out of meta)."""
        columns, order = TABLES[table]
        where = " WHERE key != 'schema_version'" if table == "meta" else ""
        for row in self._q(f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {order}").fetchall():
            yield tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)

    @_operation
    def is_blank(self) -> bool:
        """Whether this database holds no transcripts, decisions or models yet (a copy may go into it)."""
        return not any(self._one(f"SELECT COUNT(*) FROM {table}") for table in ("transcripts", "decisions", "model_runs"))

    @_operation
    def load_tables(self, tables: dict[str, Iterable[Sequence[Any]]]) -> None:
        """Write whole tables, ids kept, in one transaction; the database's numbering then goes on after the highest id."""
        with self.transaction():
            for table, rows in tables.items():
                columns, _order = TABLES[table]
                if table == "meta":
                    self._q("DELETE FROM meta WHERE key != 'schema_version'")
                placeholders = ", ".join("?" * len(columns))
                self._many(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
                           ([self.dialect.binary(value) if isinstance(value, bytes) else value for value in row] for row in rows))
            self.dialect.continue_numbering(self.db, NUMBERED_TABLES)

    # -- the sentence-vector cache --------------------------------------------------------

    @_operation
    def cached_vectors(self, model: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The cached vectors of ``model`` among ``keys`` (text digests), as stored bytes; missing keys are left out."""
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for key, vector in self._q(f"SELECT text_hash, vector FROM segment_vectors WHERE model = ? AND text_hash IN ({marks})",
                                       (model, *chunk)).fetchall():
                found[key] = bytes(vector)
        return found

    @_operation
    def save_vectors(self, model: str, rows: Sequence[tuple[str, bytes]]) -> None:
        """File vectors under their text digests (a row already there is replaced: it may have been unreadable)."""
        if self.read_only or not rows:
            return
        with self.transaction():
            self._many("INSERT INTO segment_vectors (model, text_hash, vector) VALUES (?, ?, ?) "
                       "ON CONFLICT (model, text_hash) DO UPDATE SET vector = excluded.vector",
                       ((model, key, self.dialect.binary(vector)) for key, vector in rows))

    @_operation
    def prune_vectors(self, model: str, keep: Iterable[str]) -> int:
        """Drop cached vectors of other models, and of texts not in ``keep`` (segments since re-imported); how many went."""
        if self.read_only:
            return 0
        wanted = set(keep)
        with self.transaction():
            dropped = int(self._one("SELECT COUNT(*) FROM segment_vectors WHERE model != ?", (model,)))
            self._q("DELETE FROM segment_vectors WHERE model != ?", (model,))
            stale = [key for (key,) in self._q("SELECT text_hash FROM segment_vectors WHERE model = ?", (model,)).fetchall()
                     if key not in wanted]
            for start in range(0, len(stale), _IN_CHUNK):
                chunk = stale[start : start + _IN_CHUNK]
                self._q(f"DELETE FROM segment_vectors WHERE model = ? AND text_hash IN ({', '.join('?' * len(chunk))})", (model, *chunk))
        return dropped + len(stale)

    @_operation
    def segment_transcripts(self, segment_ids: Sequence[int]) -> dict[int, str]:
        """Which transcript each of ``segment_ids`` belongs to."""
        found: dict[int, str] = {}
        unique = list(dict.fromkeys(segment_ids))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            rows = self._q(f"SELECT id, transcript_id FROM segments WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
            found.update((int(segment_id), transcript_id) for segment_id, transcript_id in rows)
        return found

    # -- learned models ---------------------------------------------------------------

    @_operation
    def save_model_run(self, *, trained_at: str, decisions: int, summary: dict[str, Any], parameters: bytes, format: str) -> int:
        with self.transaction():
            return int(self._one(
                "INSERT INTO model_runs (trained_at, decisions, summary, parameters, format) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (trained_at, decisions, json.dumps(summary), self.dialect.binary(parameters), format),
            ))

    @_operation
    def latest_model_run(self, *, parameters: bool = False) -> ModelRun | None:
        """The most recent training run: its summary, and with ``parameters`` its fitted parameters (bytes, never unpickled)."""
        columns = "id, trained_at, decisions, summary, format" + (", parameters" if parameters else "")
        row = self._q(f"SELECT {columns} FROM model_runs ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        blob = bytes(row[5]) if parameters and row[5] is not None else None
        return ModelRun(int(row[0]), row[1], int(row[2]), _json(row[3], "model_runs", row[0]), row[4], blob)

