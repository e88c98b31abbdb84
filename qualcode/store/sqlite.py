"""Everything SQLite-only in one place: connecting, pragmas, the schema version in
``user_version``, the online backup, the integrity check, the coding lock and the
errors SQLite raises for a full disk, a read-only file or a damaged database."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from qualcode.errors import ProjectError, os_error
from qualcode.leftovers import sweep, temporary_path
from qualcode.store.records import holder_record, holder_text

NAME = "sqlite"
CHECKPOINT_COMMITS = 250  # a review's commit writes about four pages: SQLite's own mark is 1,000


class SqliteDialect:
    name = NAME
    # SQLite takes one writer at a time, so a migration holds the database by itself.
    auto_migrate = True

    def __init__(self, path: Path, *, timeout: float = 30.0, read_only: bool = False) -> None:
        self.path = path
        self.timeout = timeout
        self.read_only = read_only

    def describe(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def writable(self) -> bool:
        """Whether this process may write the database and the folder beside it (a read-only share or mount says no)."""
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return os.access(folder, os.W_OK) and (not self.path.exists() or os.access(self.path, os.W_OK))

    def connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        if not self.writable():
            raise ProjectError("the project is read-only: its database cannot be written here", path=self.path,
                               fix="ask for write access to the project folder; reading commands (status, stats, check, "
                                   "export --output DIR, agreement) work as it is")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    def _connect_read_only(self) -> sqlite3.Connection:
        """Open without writing anything: a reading command works on a read-only share and never changes the file.

        A WAL database read where its '-shm' index cannot be made (a read-only folder) is opened as
        immutable: nobody can write it there either, so it cannot change while it is read.
        """
        from urllib.parse import quote

        mode = "ro" if self.writable() or Path(f"{self.path}-shm").exists() else "ro&immutable=1"
        connection = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode={mode}", uri=True, timeout=self.timeout,
                                     isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        connection.execute("PRAGMA query_only = ON")
        return connection

    @staticmethod
    def sql(statement: str) -> str:
        return statement

    @staticmethod
    def executemany(connection: sqlite3.Connection, statement: str, rows: Any) -> None:
        connection.executemany(statement, rows)

    @staticmethod
    def binary(data: bytes) -> bytes:
        return data

    @staticmethod
    def connection_lost(exc: BaseException) -> bool:
        return False  # a file has no connection to lose

    @staticmethod
    def bulk_insert(store: Any, transcripts: list[tuple], segments: list[tuple], suggestions: list[tuple]) -> None:
        store._bulk_insert(transcripts, segments, suggestions)  # one writer, one file: executemany is the fast way in

    @staticmethod
    def continue_numbering(connection: sqlite3.Connection, tables: list[str]) -> None:
        pass  # AUTOINCREMENT already goes on after the highest id written

    @staticmethod
    def lock_schema(connection: sqlite3.Connection) -> None:
        pass  # BEGIN IMMEDIATE already holds the only write lock

    def begin(self, connection: sqlite3.Connection, *, write: bool) -> None:
        """Start a transaction; a write one takes the write lock at once (IMMEDIATE), so a writer never fails half-way
        on "database is locked".

        Waiting for that lock is done here rather than by SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20 and
        then 25 ms and more between tries: a coder's key queued behind another coder's (a fraction of a millisecond)
        slept up to 25 ms too long, most of a key's time when a team shares one file. Here a waiting writer looks
        again within 2 ms (20 ms after the first second), still giving up after the same timeout."""
        if not write:
            connection.execute("BEGIN")
            return
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            began = time.monotonic()
            pause = 0.0002
            while True:
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    waited = time.monotonic() - began
                    if getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF != sqlite3.SQLITE_BUSY or waited >= self.timeout:
                        raise
                time.sleep(pause * random.uniform(0.5, 1.0))  # spread, so waiting writers do not try in step
                pause = min(pause * 2, 0.002 if waited < 1 else 0.02)
        finally:
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    @staticmethod
    def defer_checkpoints(connection: sqlite3.Connection) -> None:
        """Stop SQLite copying its write-ahead log into the database file at the end of a commit (every 1,000 pages);
        ``checkpoint_if_due`` does it when the process is idle (a review, between keys)."""
        connection.execute("PRAGMA wal_autocheckpoint = 0")

    @staticmethod
    def checkpoint_if_due(connection: sqlite3.Connection, commits: int) -> bool:
        """Copy the write-ahead log into the database after ``CHECKPOINT_COMMITS`` commits of this connection (about
        SQLite's own mark of 1,000 pages for a review's commits), without waiting for anyone (PASSIVE); whether it did."""
        if commits < CHECKPOINT_COMMITS:
            return False
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return True

    @staticmethod
    def rollback(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:  # SQLite may already have rolled back (a full disk does)
            connection.execute("ROLLBACK")

    @staticmethod
    def read_version(connection: sqlite3.Connection) -> int:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])

    @staticmethod
    def write_version(connection: sqlite3.Connection, version: int) -> None:
        connection.execute(f"PRAGMA user_version = {int(version)}")

    @staticmethod
    def placement_problem(connection: sqlite3.Connection) -> None:
        return None  # a file has one place

    @staticmethod
    def is_empty(connection: sqlite3.Connection) -> bool:
        return connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0

    def backup(self, connection: sqlite3.Connection, target: Path) -> Path:
        """A consistent copy through SQLite's online backup API, written to a temporary file and renamed.

        A full disk or an unwritable target is named as the target's problem, and no temporary copy is left behind."""
        temporary = temporary_path(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            sweep(target.parent)  # what a killed backup left here
            copy = sqlite3.connect(temporary)
            try:
                connection.backup(copy)
            finally:
                copy.close()
            os.replace(temporary, target)
        except OSError as exc:
            raise os_error(exc, target) from None
        except sqlite3.DatabaseError as exc:
            if "disk is full" in str(exc) or _nearly_full(target.parent):
                raise os_error(OSError(errno.ENOSPC, "disk full"), target) from None
            if "unable to open" in str(exc):
                raise os_error(OSError(errno.EACCES, str(exc)), target) from None
            raise
        finally:
            if temporary.exists():
                temporary.unlink()
        return target

    @staticmethod
    def integrity(connection: sqlite3.Connection) -> list[str]:
        lines = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        return [] if lines == ["ok"] else [f"integrity: {line}" for line in lines[:20]]

    def backup_name(self, version: int) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        return self.path.parent / "backups" / f"{self.path.stem}-schema{version}-{stamp}.db"

    @contextmanager
    def opening(self) -> Iterator[None]:
        """Hold an OS lock on a file beside the database while it is opened, created or migrated: two processes
        meeting a new database would otherwise race to switch it to WAL and create its tables (SQLite answers one
        of them 'database is locked' at once, without waiting). Released when the process ends, however it ends."""
        if self.read_only or not self.writable():
            yield  # nothing will be created or migrated here
            return
        lock_path = self.path.parent / "open.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def code_lock(self, holder: str, store: Any = None) -> Iterator[Any]:
        """One `qualcode code` writing at a time: an OS lock on a file beside the database, released when the process ends
        (so there is nothing to renew: what it yields renews nothing)."""
        lock_path = self.path.parent / "code.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise ProjectError(
                    f"another 'qualcode code' is running on this project ({holder_text(handle.read())})",
                    path=self.path,
                    fix="wait for it to finish, then run 'qualcode code' again",
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(holder_record(holder))
            handle.flush()
            try:
                yield _Held()
            finally:
                handle.truncate(0)
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def translate(self, exc: BaseException, *, opening: bool = False) -> ProjectError | None:
        """A located message for the SQLite errors a researcher can act on; None for the rest."""
        if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
            return None
        text = str(exc)
        if "disk is full" in text or ("disk I/O error" in text and _nearly_full(self.path.parent)):
            return ProjectError(f"the disk is full ({text})", path=self.path, fix="free some space on this disk, then run the command again; nothing was lost")
        if "disk I/O error" in text:
            return ProjectError(f"the disk could not be read or written ({text})", path=self.path,
                                fix="check the disk and the connection to it, then run 'qualcode check'")
        if "readonly" in text or "read-only" in text:
            return ProjectError("the project database is read-only", path=self.path,
                                fix="ask for write access to the project folder, or use a reading command (status, stats, export)")
        if "locked" in text or "busy" in text:
            return ProjectError(f"the project database stayed busy for {self.timeout:g} s ({text})", path=self.path,
                                fix="another qualcode is writing a large batch; run the command again when it has finished")
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
            return ProjectError(f"cannot open the project database ({text})", path=self.path,
                                fix="check that the folder exists and you may read and write it")
        return ProjectError(f"{'cannot open the project database' if opening else 'the project database is damaged'} ({text})", path=self.path,
                            fix="restore it from .qualcode/backups/ or a 'qualcode backup', then run 'qualcode check'")


def _nearly_full(folder: Path) -> bool:
    """Whether the disk holding ``folder`` has under 1 MB left: SQLite reports a write that found no room as an I/O
    error when it was to its WAL index, and a backup's copy fails the same way, so the disk is looked at."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1_048_576




class _Held:
    """A lock held for as long as the process lives: nothing to renew."""

    def renew(self) -> None:
        pass
