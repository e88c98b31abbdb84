"""Keeping a project safe: consistent backups, and checks that say what is wrong and how to repair it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from qualcode.errors import ProjectError
from qualcode.ingest.segmenting import speakers_warning, undeclared_speakers
from qualcode.ingest.transcripts import file_hash
from qualcode.project import Project
from qualcode.store import TABLES, Store


def backup(project: Project, *, output: str | Path | None = None) -> Path:
    """A consistent copy of the project database, safe to take while others work in it, whatever its schema version (the
    copy to take before 'qualcode db upgrade')."""
    store = project.existing_store(any_schema=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    suffix = ".db" if project.is_sqlite else ".dump"  # pg_dump's custom format, for pg_restore
    target = Path(output) if output else project.database_path.parent / "backups" / f"project-{stamp}{suffix}"
    if target.exists():  # never replaced: it may be the only good copy
        raise ProjectError("a file or folder of that name exists already", path=target,
                           fix="name a new file for the backup (--output), or move the old one away first")
    return store.backup(target)


@dataclass
class CheckReport:
    schema_version: int
    transcripts: int
    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong: undeclared speaker labels, a coder's folder

    @property
    def ok(self) -> bool:
        return not self.problems


RESTORE = "restore the latest copy from .qualcode/backups/ (or a 'qualcode backup'); then 'qualcode check' again"


def check(project: Project) -> CheckReport:
    """Verify a project: schema, integrity, every row readable and its JSON whole, orphan rows, and transcripts whose
    files changed or vanished. A damaged database is reported, never raised: check is where a researcher looks."""
    try:
        store = project.store
    except ProjectError as exc:
        if not project.has_database or "schema version" in exc.message or exc.message.startswith("no project database"):
            raise  # nothing to check yet, or a version to upgrade: the message says what to do
        return CheckReport(-1, 0, [f"the database cannot be opened: {exc.message}"], [RESTORE])
    with store.snapshot():
        return _check(project, store)


def _inside(project: Project, stored: str) -> Path | None:
    """A stored transcript path as a file of this project; None when it would lead outside it."""
    path = project.root / stored
    return path if project.holds(path) else None


def _check(project: Project, store: Store) -> CheckReport:
    report = CheckReport(store.schema_version, 0, store.problems())
    try:
        report.transcripts = store.counts()["transcripts"]
        stored_transcripts = list(store.transcripts().values())
    except ProjectError as exc:
        stored_transcripts = []
        if not any(exc.message in problem for problem in report.problems):
            report.problems.append(exc.message)
    if report.problems:
        report.fixes.append(RESTORE)
    missing, changed = [], []
    for stored in stored_transcripts:
        path = _inside(project, stored.path)
        if path is None or not path.exists():
            missing.append(stored.path)
        elif file_hash(path) != stored.content_hash:
            changed.append(stored.path)
    if missing and len(missing) == len(stored_transcripts):
        # A coder's own folder on a shared database (the README's team set-up): the text is in the database.
        report.notes.append(f"none of the {len(missing)} transcript files is in this folder: the database holds their text, so "
                            "review, stats and export work here; 'qualcode code' is run where the files are")
    elif missing:
        report.problems.append(f"{len(missing)} transcript files are gone: {', '.join(missing[:5])}")
        report.fixes.append("put the files back (the database still holds their text and decisions)")
    options = project.settings.segment_options
    for stored in stored_transcripts:
        try:
            segments = store.segments(stored.id)
        except ProjectError:
            continue  # a damaged row: reported above
        found = undeclared_speakers(segments, options)
        if found:
            report.notes.append(speakers_warning(stored.path, found))
    if changed:
        report.problems.append(f"{len(changed)} transcript files changed since import: {', '.join(changed[:5])}")
        report.fixes.append("run 'qualcode code' to re-import them (decisions on unchanged segments are kept)")
    return report


# -- moving between databases and schema versions ----------------------------------------------


@dataclass
class Upgrade:
    database: str
    old_version: int
    new_version: int


def upgrade(project: Project) -> Upgrade:
    """Bring the project database's schema to this qualcode's version (one transaction, under the database's lock)."""
    store = project.existing_store(upgrade=True)
    version = store.schema_version
    # migrated_from: set only when this process ran the migration (four at once: one says it upgraded, three find it done)
    return Upgrade(project.describe_database(), store.migrated_from if store.migrated_from is not None else version, version)


@dataclass
class CopyReport:
    source: str
    target: str
    rows: dict[str, int]
    verified: bool


def copy_database(project: Project, *, to: str) -> CopyReport:
    """Copy the project's database into another, empty one (SQLite or PostgreSQL), every row and id intact,
    then read both back and compare them table by table."""
    source = project.store
    target_url = project.resolve_database(to)
    if target_url == project.database_url:
        raise ProjectError("the copy would go into the project's own database", path=project.describe_database(),
                           fix="name another database with --to")
    with Store(target_url) as target:
        if not target.is_blank():
            raise ProjectError("the target database already holds a project", path=target.dialect.describe(),
                               fix="copy into a new, empty database")
        target.load_tables({table: source.table_rows(table) for table in TABLES})
        rows = {table: 0 for table in TABLES}
        verified = True
        for table in TABLES:
            left, right = _digest(source.table_rows(table)), _digest(target.table_rows(table))
            rows[table] = left[0]
            verified = verified and left == right
        described = target.dialect.describe()
    if not verified:
        raise ProjectError("the copy differs from the project's database", path=described,
                           fix="drop the target database and copy again; report this if it happens twice")
    return CopyReport(project.describe_database(), described, rows, verified)


def _digest(rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
    """How many rows, and a hash of their values, comparable across database engines."""
    digest = hashlib.sha256()
    count = 0
    for row in rows:
        count += 1
        digest.update(json.dumps([value.hex() if isinstance(value, bytes) else value for value in row], default=str).encode("utf-8"))
    return count, digest.hexdigest()
