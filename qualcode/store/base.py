"""The store's foundation: opening a database through its dialect, transactions and snapshots, the schema version and
migrations, consistency checks, the ``meta`` table, and whole tables for moving a project between databases.

Every table-specific part of ``Store`` builds on ``StoreBase`` (``transcripts.py``, ``codings.py``, ``learning.py``); what
one database does differently sits in its dialect module (``sqlite.py``, ``postgres.py``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Self, Sequence, TypeVar

from qualcode.database_url import is_server
from qualcode.errors import ProjectError, SegmentGone
from qualcode.store.schema import SCHEMA_VERSION, statements
from qualcode.store.sqlite import SqliteDialect
from qualcode.vocabulary import Mark, Source, Verdict

_IN_CHUNK = 500  # values in one IN (...) list: under SQLite's and psycopg's parameter limits
# Every table a project holds, in an order that satisfies its foreign keys, with the column that orders its rows.
TABLES: dict[str, tuple[list[str], str]] = {
    "transcripts": (["id", "path", "format", "content_hash", "text", "file_metadata", "metadata", "imported_at", "updated_at"], "id"),
    "segments": (["id", "transcript_id", "position", "speaker", "start", '"end"', "text", "codable", "retired_at"], "id"),
    "suggestions": (["segment_id", "code", "confidence", "evidence", "source", "pipeline_version", "created_at", "applies"], "segment_id, code"),
    "batches": (["id", "coder", "method", "client_key", "created_at"], "id"),
    "decisions": (["id", "segment_id", "code", "verdict", "coder", "method", "note", "undoes", "batch", "created_at"], "id"),
    "model_runs": (["id", "trained_at", "decisions", "summary", "parameters", "format"], "id"),
    "meta": (["key", "value"], "key"),
    "llm_replies": (["model", "prompt_version", "codebook", "segment_key", "status", "reply", "created_at"],
                    "model, prompt_version, codebook, segment_key"),
}

NUMBERED_TABLES = ["segments", "batches", "decisions", "model_runs"]  # their ids come from the database's numbering

# What names a row in a message: the key columns of each table.
KEY_COLUMNS = {"transcripts": ("id",), "segments": ("id",), "suggestions": ("segment_id", "code"), "batches": ("id",), "decisions": ("id",),
               "model_runs": ("id",), "meta": ("key",), "llm_replies": ("model", "segment_key")}

# The values a command checks as it reads them (JSON parsed, numbers, flags, known words), per table and column, with
# the check it gets: `check` runs each over every row the same way.
COLUMN_CHECKS: dict[str, dict[str, Callable[..., Any]]] = {
    "transcripts": {"file_metadata": lambda store, raw, table, key: json_object(raw, table, key),
                    "metadata": lambda store, raw, table, key: json_object(raw, table, key)},
    "suggestions": {"evidence": lambda store, raw, table, key: store._evidence(raw, *key.split("/", 1)),
                    "confidence": lambda store, raw, table, key: confidence(raw, table, key),
                    "source": lambda store, raw, table, key: source(raw, table, key)},
    "segments": {"position": lambda store, raw, table, key: integer(raw, table, key, "position"),
                 "start": lambda store, raw, table, key: integer(raw, table, key, "start"),
                 '"end"': lambda store, raw, table, key: integer(raw, table, key, "end"),
                 "text": lambda store, raw, table, key: text(raw, table, key, "text"),
                 "codable": lambda store, raw, table, key: flag(raw, table, key, "codable")},
    "decisions": {"segment_id": lambda store, raw, table, key: integer(raw, table, key, "segment_id"),
                  "verdict": lambda store, raw, table, key: verdict(raw, table, key)},
    "model_runs": {"summary": lambda store, raw, table, key: json_object(raw, table, key)},
    "llm_replies": {"reply": lambda store, raw, table, key: _json(raw, table, key)},
}

F = TypeVar("F", bound=Callable[..., Any])
SOURCES = frozenset(item.value for item in Source)
VERDICTS = frozenset(item.value for item in (*Verdict, *Mark))

# Seconds to wait before each new attempt after losing the database server: about a minute in all.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
RECONNECT_POLL = 1.0  # seconds between attempts to connect within one of those delays
OPEN_WAIT = 5.0  # seconds a batch run opening its database waits for a server that refuses it: one restarting (2-3 s here)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def damaged(table: str, key: object, what: str) -> ProjectError:
    """The message for a row a command cannot read: which table and row (a key of several columns given as a tuple,
    named only here, off the reading path), and what is wrong with it."""
    if isinstance(key, tuple):
        key = "/".join(str(part) for part in key)
    fix = ("run 'qualcode code --force': it computes every suggestion again" if table == "suggestions" else
           "restore the project from a backup ('qualcode backup' made them)")
    return ProjectError(f"damaged row in table '{table}', row {key}: {what}", fix=f"{fix}; 'qualcode check' lists every damaged row")


def integer(value: Any, table: str, key: object, column: str) -> int:
    """A whole number as stored, or the located message (a text where a number belongs, a NULL)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise damaged(table, key, f"{column} is {str(value)[:40]!r}, not a whole number")
    return value


def text(value: Any, table: str, key: object, column: str) -> str:
    if not isinstance(value, str):
        raise damaged(table, key, f"{column} is {str(value)[:40]!r}, not text")
    return value


def json_object(raw: Any, table: str, key: object) -> dict[str, Any]:
    """A JSON column that holds a mapping (metadata, a summary): parsed, and refused when it is a list or a number."""
    value = _json(raw, table, key)
    if not isinstance(value, dict):
        raise damaged(table, key, f"a JSON {type(value).__name__} where a mapping belongs")
    return value


def flag(value: Any, table: str, key: object, column: str) -> bool:
    if value not in (0, 1) or isinstance(value, float):
        raise damaged(table, key, f"{column} is {str(value)[:40]!r}, not 0 or 1")
    return bool(value)


def confidence(value: Any, table: str, key: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise damaged(table, key, f"confidence is {str(value)[:40]!r}, not a number between 0 and 1")
    return float(value)


def source(value: Any, table: str, key: object) -> str:
    if value not in SOURCES:
        raise damaged(table, key, f"source is {str(value)[:40]!r}, not one of {', '.join(sorted(SOURCES))}")
    return str(value)


def verdict(value: Any, table: str, key: object) -> str:
    if value not in VERDICTS:
        raise damaged(table, key, f"verdict is {str(value)[:40]!r}, not one of {', '.join(sorted(VERDICTS))}")
    return str(value)


def _json(text: str, table: str, key: object) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ProjectError(f"damaged JSON in table '{table}', row {key} ({exc})",
                           fix="restore the project from a backup; 'qualcode check' lists every damaged row") from None


def _operation(method: F) -> F:
    """Run a store method, turning the database errors a researcher can act on into one located message."""

    @functools.wraps(method)
    def wrapper(self: "StoreBase", *args: Any, **kwargs: Any) -> Any:
        delays = iter(RECONNECT_DELAYS)
        while True:
            try:
                return method(self, *args, **kwargs)
            except (ProjectError, SegmentGone):
                raise
            except UnicodeEncodeError:  # a name or an argument with bytes that are not UTF-8 (kept by Python as surrogates)
                raise ProjectError("text that is not valid Unicode was given (a name or an argument with bytes that are not UTF-8)",
                                   path=self.dialect.describe(), fix="give names as UTF-8 text; rename files whose names are not") from None
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
    if is_server(text):
        from qualcode.store.postgres import PostgresDialect

        return PostgresDialect(text, read_only=read_only)
    if text.startswith("sqlite:"):
        text = text[len("sqlite:") :]
        text = text[3:] if text.startswith("///") else text
    return SqliteDialect(Path(text), timeout=timeout, read_only=read_only)


class StoreBase:
    """A connection to the project's database, with what every part of the store needs."""

    def __init__(self, location: str | Path, *, timeout: float = 30.0, create: bool = True, upgrade: bool = False,
                 missing: str = "no project database yet", read_only: bool = False, any_schema: bool = False,
                 wait_for_server: bool = False) -> None:
        """Open (with ``create``, create) the database at ``location``: a path, ``sqlite:///path`` or ``postgresql://...``.

        An older schema is migrated where the dialect allows it without being asked (SQLite,
        after a backup) or with ``upgrade``; otherwise the open is refused with the fix. ``read_only`` opens it
        for reading commands: nothing is written, not even a migration. ``any_schema`` opens it whatever its schema version,
        migrating nothing and checking nothing: what `backup` needs, which must work before an upgrade as after it.
        ``wait_for_server``: a server that refuses the connection is tried again every half second for ``OPEN_WAIT``
        seconds (a batch run started while the server restarts); a wrong address costs that long before it is said.
        """
        self.read_only = read_only
        self._location, self._timeout = location, timeout
        self.dialect = dialect_for(location, timeout=timeout, read_only=read_only)
        self.path = getattr(self.dialect, "path", None)
        self._depth = 0
        self._commits = 0  # write transactions since the last checkpoint ``idle`` made
        # Told the seconds before each new attempt when the server was lost, so a screen can say so.
        self.on_retry: Callable[[float], None] | None = None
        self.migrated_from: int | None = None  # the schema version found, when opening migrated it
        if not create and not self.dialect.exists():
            raise ProjectError(missing, path=self.dialect.describe(), fix="run 'qualcode code' first")
        waiting_until = time.monotonic() + (OPEN_WAIT if wait_for_server else 0.0)
        while True:
            try:
                self._connect(create=create, upgrade=upgrade, missing=missing, any_schema=any_schema)
                return
            except ProjectError:
                raise
            except Exception as exc:
                if self.dialect.connection_lost(exc) and time.monotonic() < waiting_until:
                    time.sleep(RECONNECT_POLL / 2)
                    continue
                translated = self.dialect.translate(exc, opening=True)
                if translated is None:
                    raise
                raise translated from None

    def _connect(self, *, create: bool, upgrade: bool, missing: str, any_schema: bool) -> None:
        # Creating or migrating a database is done by one process at a time (SQLite: a lock file beside it).
        with self.dialect.opening():
            self.db = self.dialect.connect()
            try:
                if self.schema_version == 0:  # nothing here: perhaps the project is where this connection does not look
                    problem = self.dialect.placement_problem(self.db)
                    if problem is not None:
                        raise problem
                if not create and self.schema_version == 0 and self.dialect.is_empty(self.db):
                    raise ProjectError(missing, path=self.dialect.describe(), fix="run 'qualcode code' first")
                if not any_schema:
                    self._open(upgrade=upgrade)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.db.close()
                raise

    def close(self) -> None:
        self.db.close()

    def defer_checkpoints(self) -> None:
        """Leave the housekeeping that SQLite does at the end of some commits to ``idle``: for a process that waits
        for people (review), so no key waits for it."""
        self.dialect.defer_checkpoints(self.db)

    @_operation
    def idle(self) -> None:
        """Housekeeping deferred to a moment nobody waits for (after a screen is drawn, before the next key)."""
        if self.dialect.checkpoint_if_due(self.db, self._commits):
            self._commits = 0

    def _reconnect(self, delay: float) -> None:
        """Connect again within ``delay`` seconds, trying every second meanwhile: a server back after 20 s is used then,
        not at the retry due at 30 s. When it is not back by then, the operation is tried again and fails again (the
        next, longer delay)."""
        try:
            self.db.close()
        except Exception:  # the old connection is already broken; closing it may fail too
            pass
        deadline = time.monotonic() + delay
        while True:
            time.sleep(max(0.0, min(RECONNECT_POLL, deadline - time.monotonic())))
            try:
                self.db = self.dialect.connect()
                return
            except Exception as exc:
                if not self.dialect.connection_lost(exc):
                    raise
            if time.monotonic() >= deadline:
                return

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            self._commits += 1
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
            type(self)(self._location, timeout=self._timeout, create=False).close()
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
        if version > 0 and self.dialect.name == "sqlite":
            # An existing project: keep a copy of it as it was before changing its schema.
            self.dialect.backup(self.db, self.dialect.backup_name(version))
        with self.transaction():
            self.dialect.lock_schema(self.db)
            version = self.schema_version  # another process may have migrated while this one waited
            for statement in statements(version, SCHEMA_VERSION, self.dialect.name):
                self.db.execute(statement)
            self.dialect.write_version(self.db, SCHEMA_VERSION)
        # Only the process that ran the statements says it migrated; one that waited for it found the schema current.
        self.migrated_from = version if version != SCHEMA_VERSION else None
        return version

    @_operation
    def backup(self, target: str | Path) -> Path:
        return self.dialect.backup(self.db, Path(target))

    def problems(self) -> list[str]:
        """Integrity and consistency problems in the database, as sentences: each check runs even when another
        fails, so a damaged page, a damaged JSON value and an orphan row are all reported in one reading."""
        found: list[str] = []
        for check in (self._integrity, self._orphans, self._damaged_rows, self.unreadable_model_runs):
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

    def unreadable_model_runs(self) -> list[str]:
        """Model runs whose parameters cannot be read (the model_runs table's own check, in ``LearningTables``)."""
        return []

    @_operation
    def _damaged_rows(self) -> list[str]:
        """Every row of every table read in full, and each checked value checked as the commands check it."""
        found: list[str] = []
        for table, (columns, _order) in TABLES.items():
            wanted = COLUMN_CHECKS.get(table, {})
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
    def code_lock(self, holder: str) -> Iterator[Any]:
        """Only one `qualcode code` run writes at a time; a second is refused with the holder's name. What it yields has
        ``renew()``, called as the run goes (a lease on a server must be renewed; a file lock needs nothing)."""
        with self.dialect.code_lock(holder, self) as held:
            yield held

    @_operation
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return default if value is None else value

    @_operation
    def set_meta(self, key: str, value: str) -> None:
        self._q("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

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
