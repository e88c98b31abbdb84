"""Coding results as Parquet shards: what workers write and the project database merges.

One shard holds a batch of files, one row per file: the segmented transcript, its
suggestions and its metadata, or why the file was skipped. Every row carries its key:
(transcript, content hash, pipeline version). A shard's name is derived from the keys of
its files, and a shard is written to a temporary name and renamed, so a batch rerun after a
crash finds its finished shard instead of writing a second one. Paths go through fsspec, so
a shared folder, NFS or (with s3fs) S3 all work.

pyarrow is part of the ``qualcode[dask]`` extra.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from qualcode.errors import ProjectError, os_error
from qualcode.ingest.segmenting import Segment
from qualcode.ingest.transcripts import Transcript
from qualcode.suggestion import Evidence, Suggestion

SHARD_SUFFIX = ".parquet"
FORMAT = "qualcode-shard-1"


def require(module: str) -> Any:
    """Import one of the engine's optional libraries, or say which extra brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ProjectError(
            f"'{module.split('.')[0]}' is not installed: the Dask engine and Parquet shards need qualcode's dask extra",
            fix="pip install 'qualcode[dask]'",
        ) from None


@dataclass
class ShardRow:
    """One file's outcome as a shard holds it."""

    path: str  # as the project names it
    transcript_id: str
    content_hash: str
    pipeline_version: str
    transcript: Transcript | None = None
    suggestions: list[list[Suggestion]] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def shard_name(keys: Sequence[tuple[str, str]], pipeline_version: str) -> str:
    """The same files coded by the same pipeline always give the same name."""
    digest = hashlib.sha256("\n".join([pipeline_version, *(f"{tid}\x1f{content}" for tid, content in sorted(keys))]).encode("utf-8"))
    return f"shard-{digest.hexdigest()[:24]}{SHARD_SUFFIX}"


def _filesystem(location: str) -> tuple[Any, str]:
    fsspec = require("fsspec")
    return fsspec.core.url_to_fs(location)


def check_location(location: str) -> None:
    """A shard folder as given, checked on this machine before any worker starts: named, its filesystem installed
    (s3:// needs s3fs, gs:// gcsfs, ...), and, when local, a folder this user can write to. A probe file is written and
    removed, so a read-only folder is said once here rather than by every worker."""
    if not location.strip():
        raise ProjectError("no folder after 'parquet:'", fix="name a folder: --output parquet:shards (or parquet:s3://bucket/run-1 with s3fs)")
    fsspec = require("fsspec")
    protocol = location.split("://", 1)[0] if "://" in location else "file"
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        raise ProjectError(f"'{protocol}://' needs a package that is not installed ({str(exc).splitlines()[0]})",
                           fix="install it beside qualcode (for s3://: pip install s3fs), or write to a local or NFS folder") from None
    except ValueError:
        raise ProjectError(f"fsspec knows no '{protocol}://' filesystem", fix="write to a local or NFS folder, or s3:// with s3fs") from None
    if protocol != "file":
        return
    root = Path(location.removeprefix("file://")).expanduser()
    probe = root / f".qualcode-probe-{uuid.uuid4().hex}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise os_error(exc, root) from None


def exists(location: str, name: str) -> bool:
    fs, root = _filesystem(location)
    return bool(fs.exists(f"{root.rstrip('/')}/{name}"))


def write(location: str, name: str, rows: Sequence[ShardRow]) -> str:
    """Write one shard atomically: to a temporary name in the same folder, then renamed."""
    pa = require("pyarrow")
    pq = require("pyarrow.parquet")
    fs, root = _filesystem(location)
    fs.makedirs(root, exist_ok=True)
    columns: dict[str, list[Any]] = {name: [] for name in ("path", "transcript_id", "content_hash", "pipeline_version", "format", "text",
                                                          "file_metadata", "metadata", "warnings", "segments", "suggestions", "error")}
    for row in rows:
        transcript = row.transcript
        columns["path"].append(row.path)
        columns["transcript_id"].append(row.transcript_id)
        columns["content_hash"].append(row.content_hash)
        columns["pipeline_version"].append(row.pipeline_version)
        columns["format"].append(transcript.format if transcript else None)
        columns["text"].append(transcript.text if transcript else None)
        columns["file_metadata"].append(json.dumps(transcript.file_metadata, ensure_ascii=False) if transcript else None)
        columns["metadata"].append(json.dumps(row.metadata, ensure_ascii=False))
        columns["warnings"].append(list(transcript.warnings) if transcript else [])
        columns["segments"].append(
            [{"position": s.position, "speaker": s.speaker, "start": s.start, "end": s.end, "codable": s.codable} for s in transcript.segments]
            if transcript else []
        )
        columns["suggestions"].append(
            [[{"code": s.code, "confidence": s.confidence, "source": str(s.source), "applies": s.applies,
               "evidence": json.dumps([e.to_json() for e in s.evidence], ensure_ascii=False)} for s in items] for items in row.suggestions]
            if row.suggestions is not None else []
        )
        columns["error"].append(row.error)
    table = pa.table(columns, metadata={b"format": FORMAT.encode()})
    target = f"{root.rstrip('/')}/{name}"
    temporary = f"{root.rstrip('/')}/.{name}.{uuid.uuid4().hex}.tmp"
    with fs.open(temporary, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
    fs.mv(temporary, target)
    return target


def remove(path: str) -> None:
    fs, resolved = _filesystem(path)
    fs.rm(resolved)


def shard_paths(location: str) -> list[str]:
    """The finished shards in a folder, in name order (temporary files of a killed writer are left out)."""
    fs, root = _filesystem(location)
    if not fs.exists(root):
        raise ProjectError("no such folder of shards", path=location, fix="give the --output folder of a 'qualcode code --engine dask' run")
    return sorted(path for path in fs.ls(root, detail=False) if Path(path).name.startswith("shard-") and path.endswith(SHARD_SUFFIX))


def read(path: str) -> Iterator[ShardRow]:
    """The rows of one shard, rebuilt as transcripts with their segments and suggestions."""
    pq = require("pyarrow.parquet")
    fs, resolved = _filesystem(path)
    with fs.open(resolved, "rb") as handle:
        try:
            table = pq.read_table(handle)
        except Exception as exc:  # pyarrow raises several kinds for damaged files
            raise ProjectError(f"not a readable shard ({str(exc).splitlines()[0][:120]})", path=path,
                               fix="delete it and run the coding again; its files are coded again") from None
    if (table.schema.metadata or {}).get(b"format") != FORMAT.encode():
        raise ProjectError("not a qualcode shard (unknown format)", path=path, fix="give the folder a 'qualcode code --engine dask --output' run wrote")
    for record in table.to_pylist():
        row = ShardRow(record["path"], record["transcript_id"], record["content_hash"], record["pipeline_version"],
                       metadata=json.loads(record["metadata"] or "{}"), error=record["error"])
        if record["text"] is not None:
            text = record["text"]
            transcript = Transcript(
                id=record["transcript_id"], path=Path(record["path"]), format=record["format"], text=text, content_hash=record["content_hash"],
                file_metadata=json.loads(record["file_metadata"] or "{}"), warnings=list(record["warnings"] or []), metadata=row.metadata,
            )
            transcript.segments = [
                Segment(item["position"], item["speaker"], item["start"], item["end"], text[item["start"] : item["end"]], bool(item["codable"]))
                for item in record["segments"]
            ]
            row.transcript = transcript
            row.suggestions = [
                [Suggestion(item["code"], float(item["confidence"]), [Evidence.from_json(e) for e in json.loads(item["evidence"])], item["source"],
                            None if item.get("applies") is None else bool(item["applies"]))
                 for item in items]
                for items in record["suggestions"]
            ]
        yield row
