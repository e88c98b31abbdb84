"""Writing the project's codings out to files, each replaced atomically."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from qualcode.errors import ProjectError
from qualcode.project import Project
from qualcode.store import Store

FORMATS = ("csv",)
CODINGS_COLUMNS = ["transcript", "segment", "speaker", "start", "end", "text", "code", "status", "confidence", "coder"]


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    rows: int = 0


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside the target, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def codings_rows(store: Store, *, coder: str | None = None) -> tuple[list[str], list[list[object]]]:
    """One row per segment and code: each coder's latest decision, else the pending suggestion."""
    transcripts = store.transcripts()
    attributes = sorted({key for stored in transcripts.values() for key in stored.metadata})
    suggested: dict[int, dict[str, float]] = {}
    for row in store.suggestion_rows():
        suggested.setdefault(row["segment_id"], {})[row["code"]] = row["confidence"]
    decided: dict[int, dict[str, list]] = {}
    for (segment_id, code, _coder), row in store.latest_decisions(coder).items():
        decided.setdefault(segment_id, {}).setdefault(code, []).append(row)
    rows: list[list[object]] = []
    for transcript_id, stored in transcripts.items():
        extra = [stored.metadata.get(attribute, "") for attribute in attributes]
        for number, segment in enumerate(store.coded_segments(transcript_id), start=1):
            confidences = suggested.get(segment["id"], {})
            decisions = decided.get(segment["id"], {})
            base = [transcript_id, number, segment["speaker"] or "", segment["start"], segment["end"], segment["text"]]
            for code in sorted(set(confidences) | set(decisions)):
                confidence = confidences.get(code, "")
                if code in decisions:
                    for decision in sorted(decisions[code], key=lambda row: row["coder"]):
                        rows.append(base + [code, decision["verdict"], confidence, decision["coder"]] + extra)
                else:
                    rows.append(base + [code, "suggested", confidence, ""] + extra)
    return CODINGS_COLUMNS + attributes, rows


def export(*, project_dir: str | Path = ".", format: str = "csv", output_dir: str | Path | None = None, coder: str | None = None) -> ExportResult:
    """Write the project's codings into the exports folder (or output_dir)."""
    if format not in FORMATS:
        raise ProjectError(f"unknown export format '{format}'", fix=f"use one of: {', '.join(FORMATS)}")
    project = Project.open(project_dir)
    target = Path(output_dir) if output_dir is not None else project.exports_dir
    if not project.database_path.exists():
        raise ProjectError("nothing to export yet", path=project.root, fix="run 'qualcode code' first")
    result = ExportResult()
    with project.store() as store:
        header, rows = codings_rows(store, coder=coder)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = target / "codings.csv"
    write_atomic(path, buffer.getvalue().encode("utf-8"))
    result.files.append(path)
    result.rows = len(rows)
    return result
