"""Keeping a project safe: consistent backups, and checks that say what is wrong and how to repair it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from qualcode.project import Project
from qualcode.transcripts import file_hash


def backup(project: Project, *, output: str | Path | None = None) -> Path:
    """A consistent copy of the project database, safe to take while others work in it."""
    store = project.store
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = Path(output) if output else project.database_path.parent / "backups" / f"project-{stamp}.db"
    return store.backup(target)


@dataclass
class CheckReport:
    schema_version: int
    transcripts: int
    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(project: Project) -> CheckReport:
    """Verify a project: schema, integrity, orphan rows, and transcripts whose files changed or vanished."""
    store = project.store
    report = CheckReport(store.schema_version, store.counts()["transcripts"], store.problems())
    if report.problems:
        report.fixes.append("restore the latest copy from .qualcode/backups/ (or a 'qualcode backup'), or export what you can and start afresh")
    missing, changed = [], []
    for stored in store.transcripts().values():
        path = project.root / stored.path
        if not path.exists():
            missing.append(stored.path)
        elif file_hash(path) != stored.content_hash:
            changed.append(stored.path)
    if missing:
        report.problems.append(f"{len(missing)} transcript files are gone: {', '.join(missing[:5])}")
        report.fixes.append("put the files back (the database still holds their text and decisions)")
    if changed:
        report.problems.append(f"{len(changed)} transcript files changed since import: {', '.join(changed[:5])}")
        report.fixes.append("run 'qualcode code' to re-import them (decisions on unchanged segments are kept)")
    return report
