"""A qualcode project: a folder with codebook.yaml, transcripts/, exports/, an optional
qualcode.yaml of settings, and a database (``.qualcode/project.db``, or a server named in
the settings).

``Project.open()`` is the one way in: the project reads its settings once, loads its
codebook once (when first asked) and opens its database once (when first asked); every
service takes the project.
"""

from __future__ import annotations

import functools
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, TypeVar

from qualcode.codebook import Codebook, load_codebook
from qualcode.database_url import is_server, redact, server_problem
from qualcode.errors import ProjectError, QualcodeError
from qualcode.settings import Settings, load_settings
from qualcode.store import Store

CODEBOOK_FILE = "codebook.yaml"
DATABASE = Path(".qualcode") / "project.db"
PROJECT_META = "project"  # the codebook name of the study a shared database belongs to
DATABASE_URL_ENV = "QUALCODE_DATABASE_URL"  # wins over qualcode.yaml


class Project:
    def __init__(self, root: Path, settings: Settings, *, read_only: bool = False) -> None:
        self.root = root
        self._real_folders: dict[str, str] = {}  # a folder as named -> its real path (``relative``)
        self.settings = settings
        self.read_only = read_only
        self._store: Store | None = None

    @classmethod
    def open(cls, project_dir: str | Path = ".", *, read_only: bool = False) -> "Project":
        """The project in ``project_dir``; ``read_only`` for a command that only reads it (its database is opened so
        that nothing can be written, which also lets it work on a read-only share)."""
        root = Path(project_dir).resolve()
        if not root.is_dir():
            raise ProjectError("no such project folder", path=root, fix="pass --project with the folder holding codebook.yaml")
        return cls(root, load_settings(root), read_only=read_only)

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- where things are ----------------------------------------------------------------

    @property
    def codebook_path(self) -> Path:
        return self.root / CODEBOOK_FILE

    @property
    def transcripts_dir(self) -> Path:
        return self.root / self.settings.transcripts

    @property
    def exports_dir(self) -> Path:
        return self.root / self.settings.exports

    @property
    def database_path(self) -> Path:
        """Where an SQLite project keeps its database (backups and locks sit beside it)."""
        return self.root / DATABASE

    @property
    def database_url(self) -> str:
        """The database: QUALCODE_DATABASE_URL, else 'database' in qualcode.yaml, else the project's SQLite file."""
        url = os.environ.get(DATABASE_URL_ENV) or self.settings.database
        return self.resolve_database(url) if url else str(self.database_path)

    def resolve_database(self, url: str) -> str:
        """A database URL as qualcode opens it: a server URL as given; an SQLite file made absolute.

        SQLite is written as SQLAlchemy writes it: ``sqlite:///study.db`` is relative to the
        project, ``sqlite:////srv/studies/study.db`` absolute; ``sqlite:study.db`` and a plain
        path work too.
        """
        if is_server(url):
            problem = server_problem(url)
            if problem is not None:
                raise ProjectError(f"the database URL is malformed: {problem}", path=redact(url),
                                   fix="write it as postgresql://USER@HOST:PORT/DBNAME (an IPv6 host in [brackets]) or as "
                                       "'host=HOST dbname=DBNAME'; the password belongs in ~/.pgpass or PGPASSWORD")
            return url
        text = url[len("sqlite:") :] if url.startswith("sqlite:") else url
        text = text[3:] if text.startswith("///") else text
        path = Path(text).expanduser()
        return str(path if path.is_absolute() else self.root / path)

    @property
    def is_sqlite(self) -> bool:
        return not is_server(self.database_url)

    def describe_database(self) -> str:
        """The database as a message may name it: a path, or a URL without its password."""
        url = self.database_url
        if self.is_sqlite:
            return self.relative(Path(url))
        return redact(url)

    # -- what it holds --------------------------------------------------------------------

    @cached_property
    def codebook(self) -> Codebook:
        return load_codebook(self.codebook_path)

    @property
    def has_database(self) -> bool:
        if self._store is not None:
            return True
        if self.is_sqlite:
            return Path(self.database_url).exists()
        return True  # a server: whether it holds a project is known once connected

    def existing_store(self, missing: str = "no project database yet", *, upgrade: bool = False, any_schema: bool = False) -> Store:
        """The project's database, which must exist already (reading commands never create one).

        With ``upgrade``, an older schema on a server is brought up to date (``qualcode db upgrade``); with
        ``any_schema`` it is opened whatever its schema, to be copied as it is (``qualcode backup``).
        """
        if self._store is None:
            if not self.has_database:
                raise ProjectError(missing, path=self.root, fix="run 'qualcode code' first")
            store = Store(self.database_url, create=False, missing=missing, upgrade=upgrade, read_only=self.read_only and not upgrade,
                          any_schema=any_schema)
            if not any_schema:  # a backup copies whatever is there
                self._check_owner(store)
            self._store = store
        return self._store

    @property
    def store(self) -> Store:
        return self.existing_store()

    def create_store(self) -> Store:
        """The project's database, created (or brought to this qualcode's schema) when needed."""
        if self.read_only:
            raise ProjectError("this command only reads the project, so it cannot create its database", path=self.root)
        if self._store is None:
            store = Store(self.database_url, wait_for_server=True)  # a batch started while the server restarts waits for it
            self._check_owner(store)
            self._store = store
        return self._store

    def _check_owner(self, store: Store) -> None:
        """A database shared through 'database' or QUALCODE_DATABASE_URL belongs to one study: the one whose codebook
        name it recorded first. Another project pointed at it is refused (it would re-suggest that study's transcripts
        with its own codebook); the project's own SQLite file, which travels with its folder, is not checked."""
        if self.is_sqlite and Path(self.database_url) == self.database_path:
            return
        try:
            codebook = self.codebook
        except QualcodeError:  # a broken codebook is said by the command that reads it
            return
        name = codebook.name.strip()
        if not name or name == Path(str(codebook.path)).stem:  # no 'name:' in the codebook (it defaults to the file's): nothing to tell by
            return
        recorded = store.get_meta(PROJECT_META)
        if recorded is None:
            if not self.read_only:
                store.set_meta(PROJECT_META, name)
            return
        if recorded != name:
            store.close()
            raise ProjectError(
                f"this database holds the study '{recorded}', and this folder's codebook is named '{name}'",
                path=self.describe_database(),
                fix=f"point 'database' (or QUALCODE_DATABASE_URL) at this study's own database; if it is the same study renamed, "
                    f"set 'name: {recorded}' again in codebook.yaml",
            )

    # -- messages -------------------------------------------------------------------------

    def shorten(self, message: str) -> str:
        """A message with this project's absolute paths made relative to it."""
        return message.replace(f"{self.root}/", "")

    def holds(self, path: str | Path) -> bool:
        """Whether ``path`` lies inside the project folder, links followed (a link loop is judged where it stands)."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        return real == root or real.startswith(root + os.sep)

    def relative(self, path: Path) -> str:
        """The path as this project names it: links followed, relative to the project folder when inside it."""
        try:
            resolved = self._resolved(path)
        except (RuntimeError, OSError):  # a symbolic link loop: named as given
            resolved = Path(os.path.abspath(path))
        text, root = str(resolved), str(self.root)
        if text == root:
            return "."
        inside = root if root.endswith(os.sep) else root + os.sep
        return text[len(inside) :] if text.startswith(inside) else text  # Path.relative_to's answer, without its parsing

    def _resolved(self, path: Path) -> Path:
        """``path.resolve()``, with each folder's real path found once: a run names thousands of files in a few folders,
        and resolving each file alone read every folder above it again (half of planning a run)."""
        if path.name in ("", ".", "..") or os.path.islink(path):
            return path.resolve()
        folder = str(path.parent)
        real = self._real_folders.get(folder)
        if real is None:
            if len(self._real_folders) >= 10_000:
                self._real_folders.clear()
            real = self._real_folders[folder] = os.path.realpath(folder)
        return Path(real, path.name)

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"



F = TypeVar("F", bound=Callable[..., Any])


def one_snapshot(service: F) -> F:
    """Run a reading service in one read transaction: while `qualcode code` or a coder writes, every table of its
    report comes from the same state (a segment replaced half-way through would otherwise go missing)."""

    @functools.wraps(service)
    def wrapper(project: Project, *args: Any, **kwargs: Any) -> Any:
        with project.store.snapshot():
            return service(project, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
