"""Everything PostgreSQL-only in one place: connecting through libpq, placeholders, the
schema version in ``meta``, advisory locks (one `qualcode code` at a time, migrations
under a lock), ``pg_dump`` backups, ``COPY``, and the errors a server raises.

Credentials never come from qualcode: libpq reads ``~/.pgpass``, ``PGSERVICE`` and
``PGPASSWORD`` as it always does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from qualcode.database_url import redact, without_password
from qualcode.errors import ProjectError, os_error
from qualcode.leftovers import sweep, temporary_path
from qualcode.store.records import holder_text

NAME = "postgresql"
# Advisory lock keys (any two 32-bit numbers of our own): one for `qualcode code`, one for schema changes.
LOCK_SPACE = 0x51C0DE
SCHEMA_LOCK = 2
_PLACEHOLDER = re.compile(r"\?")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ProjectError(
            "this project's database is on a PostgreSQL server, and psycopg is not installed",
            fix="pip install 'qualcode[postgres]'",
        ) from None
    return psycopg


class PostgresDialect:
    name = NAME
    # A shared server: every coder's qualcode must agree on the schema, so an older one is
    # upgraded only when somebody asks for it (`qualcode db upgrade`).
    auto_migrate = False

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = "postgresql:" + url.split(":", 1)[1] if url.startswith("postgres:") else url
        self.path = None
        self.read_only = read_only

    def describe(self) -> str:
        return redact(self.url)

    @staticmethod
    def exists() -> bool:
        return True  # whether the database holds a project is known once connected

    @staticmethod
    @contextmanager
    def opening() -> Iterator[None]:
        yield  # a migration takes the server's advisory lock in its own transaction

    @staticmethod
    def writable() -> bool:
        return True  # the server decides, per statement

    def connect(self) -> Any:
        psycopg = _psycopg()
        connection = psycopg.connect(self.url, autocommit=True, connect_timeout=10, application_name="qualcode")
        connection.execute("SET lock_timeout = '30s'")
        if self.read_only:  # a reading command cannot change the project, whatever it runs
            connection.execute("SET default_transaction_read_only = on")
        return connection

    @staticmethod
    def sql(statement: str) -> str:
        return _PLACEHOLDER.sub("%s", statement)

    @staticmethod
    def executemany(connection: Any, statement: str, rows: Iterable[Any]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(statement, list(rows))

    @staticmethod
    def binary(data: bytes) -> bytes:
        return data

    @staticmethod
    def begin(connection: Any, *, write: bool) -> None:
        connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    @staticmethod
    def rollback(connection: Any) -> None:
        try:
            connection.execute("ROLLBACK")
        except Exception:  # a broken connection has nothing left to roll back: the server already did
            pass

    @staticmethod
    def read_version(connection: Any) -> int:
        # pg_class read as a table, with this statement's snapshot: to_regclass reads the catalog cache, which waiting on
        # an advisory lock does not refresh, so a process that waited while another created the schema saw none
        exists = connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'meta' AND n.nspname = current_schema())"
        ).fetchone()[0]
        if not exists:
            return 0
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0]) if row else 0
        except ValueError:
            return -1

    @staticmethod
    def write_version(connection: Any, version: int) -> None:
        connection.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(int(version)),),
        )

    def placement_problem(self, connection: Any) -> ProjectError | None:
        """Why a server database that shows no project here may hold one all the same: this role may use no schema on its
        search_path (current_schema() is NULL: 'no schema has been selected to create in'), or qualcode's tables are in
        another schema than the one this connection uses (read from pg_class, which every role may read)."""
        current = connection.execute("SELECT current_schema()").fetchone()[0]
        if current is None:
            search_path = connection.execute("SHOW search_path").fetchone()[0]
            return ProjectError(f"this role may use no schema on its search_path ({search_path})", path=self.describe(),
                                fix="ask the database's owner to GRANT USAGE (and CREATE, for the first 'qualcode code') ON SCHEMA to you, "
                                    "or name a schema you may use in the URL: ?options=-csearch_path%3DSCHEMA")
        elsewhere = [row[0] for row in connection.execute(
            "SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'meta' AND c.relkind = 'r' AND n.nspname <> current_schema() AND EXISTS (SELECT 1 FROM pg_catalog.pg_class d "
            "WHERE d.relname = 'decisions' AND d.relnamespace = n.oid) ORDER BY n.nspname"
        ).fetchall()]
        if elsewhere:
            return ProjectError(f"this database's qualcode project is in schema '{elsewhere[0]}', and this connection uses schema '{current}'",
                                path=self.describe(),
                                fix=f"add ?options=-csearch_path%3D{elsewhere[0]} to the database URL (or ask for USAGE on schema "
                                    f"{elsewhere[0]}); a 'qualcode code' here would start a second, empty project")
        return None

    @staticmethod
    def is_empty(connection: Any) -> bool:
        count = connection.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()").fetchone()[0]
        return count == 0

    @staticmethod
    def continue_numbering(connection: Any, tables: list[str]) -> None:
        """After rows were written with their ids, let the identity columns go on from the highest."""
        for table in tables:
            connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )

    @staticmethod
    def defer_checkpoints(connection: Any) -> None:
        pass  # the server checkpoints on its own, apart from any client

    @staticmethod
    def checkpoint_if_due(connection: Any, commits: int) -> bool:
        return False

    @staticmethod
    def lock_schema(connection: Any) -> None:
        # Released by the transaction's end; a second qualcode upgrading at once waits, then finds nothing to do.
        connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, SCHEMA_LOCK))

    def backup(self, connection: Any, target: Path) -> Path:
        """A consistent copy with pg_dump in its custom format (restore with pg_restore), written to a temporary file and renamed."""
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise ProjectError("pg_dump is not installed", fix="install PostgreSQL's client programs (Debian: apt-get install postgresql-client)")
        temporary = temporary_path(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            sweep(target.parent)  # what a killed backup left here
            # the password, if the URL has one, through the environment: a command line is readable by every local user
            dbname, password = without_password(self.url)
            environment = {**os.environ, "PGPASSWORD": password} if password is not None else None
            completed = subprocess.run([pg_dump, "--format=custom", "--no-owner", f"--file={temporary}", f"--dbname={dbname}"],
                                       capture_output=True, text=True, timeout=3600, check=False, env=environment)
            if completed.returncode != 0:
                message = (completed.stderr.strip().splitlines() or ["no message"])[-1]
                raise ProjectError(f"pg_dump failed ({redact(message)})", path=self.describe(),
                                   fix="check that pg_dump's version is at least the server's, and that you may read the database")
            os.replace(temporary, target)
        except OSError as exc:
            raise os_error(exc, target) from None
        finally:
            if temporary.exists():
                temporary.unlink()
        return target

    @staticmethod
    def integrity(connection: Any) -> list[str]:
        invalid = connection.execute(
            "SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid"
        ).fetchone()[0]
        return [f"integrity: {invalid} invalid indexes (rebuild them with REINDEX)"] if invalid else []

    def backup_name(self, version: int) -> Path:
        raise AssertionError("a PostgreSQL project is never migrated without being asked")

    @contextmanager
    def code_lock(self, holder: str, store: Any) -> Iterator[Any]:
        """One `qualcode code` writing at a time: the 'code' lease, a row rather than a connection's advisory lock, so a
        server restart (the reconnect) keeps it; the run renews it as it goes (``renew()`` on what this yields), and a
        run that stalled past its expiry while another took over stops with a message at its next renewal."""
        try:
            with store.lease("code", holder) as lease:
                yield lease
        except ProjectError as exc:
            if not hasattr(exc, "holder"):  # a LeaseTaken names its holder; anything else is the run's own error
                raise
            raise ProjectError(
                f"another 'qualcode code' is writing to this project ({holder_text(str(exc.holder))})",
                path=self.describe(),
                fix="wait for it to finish, then run 'qualcode code' again",
            ) from None

    @staticmethod
    def _copy(connection: Any, table: str, columns: str, rows: Iterable[Iterable[Any]]) -> None:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def bulk_insert(self, store: Any, transcripts: list[tuple], segments: list[tuple], suggestions: list[tuple]) -> None:
        """New transcripts through COPY into staging tables, then an upsert: the fastest way into PostgreSQL.

        Segments and suggestions meet again by (transcript, position), since their ids are only known inside the server.
        """
        connection = store.db
        connection.execute("CREATE TEMP TABLE staging_transcripts (LIKE transcripts) ON COMMIT DROP")
        connection.execute(
            'CREATE TEMP TABLE staging_segments (transcript_id TEXT, position INTEGER, speaker TEXT, start INTEGER, "end" INTEGER, '
            "text TEXT, codable INTEGER) ON COMMIT DROP"
        )
        connection.execute(
            "CREATE TEMP TABLE staging_suggestions (transcript_id TEXT, position INTEGER, code TEXT, confidence DOUBLE PRECISION, "
            "evidence TEXT, source TEXT, pipeline_version TEXT, created_at TEXT, applies INTEGER) ON COMMIT DROP"
        )
        self._copy(connection, "staging_transcripts", "id, path, format, content_hash, text, file_metadata, metadata, imported_at, updated_at",
                   transcripts)
        self._copy(connection, "staging_segments", 'transcript_id, position, speaker, start, "end", text, codable', segments)
        self._copy(connection, "staging_suggestions", "transcript_id, position, code, confidence, evidence, source, pipeline_version, created_at, applies",
                   suggestions)
        connection.execute("CREATE TEMP TABLE staging_new ON COMMIT DROP AS SELECT id FROM staging_transcripts WITH NO DATA")
        connection.execute(
            "WITH inserted AS (INSERT INTO transcripts SELECT * FROM staging_transcripts ON CONFLICT (id) DO NOTHING RETURNING id) "
            "INSERT INTO staging_new SELECT id FROM inserted"
        )
        connection.execute(
            'INSERT INTO segments (transcript_id, position, speaker, start, "end", text, codable) '
            'SELECT s.transcript_id, s.position, s.speaker, s.start, s."end", s.text, s.codable FROM staging_segments s '
            "JOIN staging_new n ON n.id = s.transcript_id"
        )
        connection.execute(
            "INSERT INTO suggestions (segment_id, code, confidence, evidence, source, pipeline_version, created_at, applies) "
            "SELECT g.id, s.code, s.confidence, s.evidence, s.source, s.pipeline_version, s.created_at, s.applies FROM staging_suggestions s "
            "JOIN staging_new n ON n.id = s.transcript_id "
            "JOIN segments g ON g.transcript_id = s.transcript_id AND g.position = s.position AND g.retired_at IS NULL"
        )

    @staticmethod
    def connection_lost(exc: BaseException) -> bool:
        psycopg = _psycopg()
        if not isinstance(exc, psycopg.OperationalError):
            return False
        state = getattr(exc, "sqlstate", None)
        return state is None or state.startswith(("08", "57P"))

    def translate(self, exc: BaseException, *, opening: bool = False) -> ProjectError | None:
        psycopg = _psycopg()
        if not isinstance(exc, psycopg.Error) or isinstance(exc, (psycopg.IntegrityError, psycopg.ProgrammingError)) and not isinstance(
            exc, psycopg.errors.InsufficientPrivilege
        ):
            return None
        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        state = getattr(exc, "sqlstate", None) or ""
        if state == "53100":
            return ProjectError(f"the database server's disk is full ({text})", path=self.describe(),
                                fix="ask the server's administrator to free space; nothing acknowledged was lost")
        if state == "42501":
            return ProjectError(f"no permission on the project database ({text})", path=self.describe(),
                                fix="ask the database's owner to GRANT you access to its tables")
        if state == "25006":
            return ProjectError("the project database is read-only for you", path=self.describe(),
                                fix="use a reading command (status, stats, export), or ask for write access")
        if self.connection_lost(exc):
            return ProjectError(
                f"cannot reach the database server ({text})",
                path=self.describe(),
                fix="check that the server is running and reachable; the password comes from ~/.pgpass, PGSERVICE or PGPASSWORD",
            )
        return ProjectError(f"the database server refused ({text})", path=self.describe(), fix="run 'qualcode check'")


