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
import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

from qualcode.errors import ProjectError, os_error
from qualcode.ingest.segmenting import MAX_SEGMENT_CHARS, Segment
from qualcode.ingest.transcripts import Transcript
from qualcode.suggestion import Evidence, Suggestion
from qualcode.vocabulary import Source

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


_TEMPORARY = re.compile(r"\.(shard-[0-9a-f]{24}" + re.escape(SHARD_SUFFIX) + r")\.[0-9a-f]{32}\.tmp")


def sweep_leftovers(location: str) -> list[str]:
    """Remove the temporary files of shards that are finished; the names removed.

    A worker killed while writing a shard leaves its temporary file, and its batch is written again by another worker:
    once that shard is there, the leftover is nobody's. A temporary file whose shard is not finished may be one a worker
    (on any machine) is writing now, so it is left; the run that finishes that shard removes it."""
    fs, root = _filesystem(location)
    try:
        paths = fs.ls(root, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    present = {Path(path).name for path in paths}
    removed = []
    for path in paths:
        found = _TEMPORARY.fullmatch(Path(path).name)
        if found is not None and found.group(1) in present:
            try:
                fs.rm(path)
            except (FileNotFoundError, OSError):  # another run swept it first, or it cannot be removed: left as it is
                continue
            removed.append(Path(path).name)
    return removed


def remove(path: str) -> None:
    fs, resolved = _filesystem(path)
    fs.rm(resolved)


def shard_paths(location: str) -> list[str]:
    """The finished shards in a folder, in name order (temporary files of a killed writer are left out)."""
    fs, root = _filesystem(location)
    if not fs.exists(root):
        raise ProjectError("no such folder of shards", path=location, fix="give the --output folder of a 'qualcode code --engine dask' run")
    return sorted(path for path in fs.ls(root, detail=False) if Path(path).name.startswith("shard-") and path.endswith(SHARD_SUFFIX))


MAX_SHARD_BYTES = 4_000_000_000  # uncompressed, as its row groups declare it: a batch of files, never more
_COLUMNS = ("path", "transcript_id", "content_hash", "pipeline_version", "format", "text", "file_metadata", "metadata", "warnings", "segments",
            "suggestions", "error")
_TEXT_FORMATS = ("txt", "md", "docx", "vtt", "srt")


class _Bad(Exception):
    """A shard row that cannot be what a qualcode worker wrote."""


def read(path: str, codes: Collection[str] | None = None) -> Iterator[ShardRow]:
    """The rows of one shard, rebuilt as transcripts with their segments and suggestions, each checked against what a
    worker writes before it is handed on: the columns and their types, ids, offsets inside the text, segments no longer
    than segmenting makes them, known codes (with ``codes``), finite confidences between 0 and 1, evidence inside its
    segment. The first row that fails stops the shard with a message naming it; nothing of it is merged."""
    pq = require("pyarrow.parquet")
    fs, resolved = _filesystem(path)
    info = fs.info(resolved)
    if info.get("type") != "file":  # fsspec says "other" for a FIFO, a device or a socket
        raise ProjectError("not an ordinary file (a pipe, a device or a folder)", path=path, fix="remove it from the shard folder")
    with fs.open(resolved, "rb") as handle:
        try:
            parquet = pq.ParquetFile(handle)
            declared = sum(parquet.metadata.row_group(index).total_byte_size for index in range(parquet.metadata.num_row_groups))
            if declared > MAX_SHARD_BYTES:
                raise ProjectError(f"the shard holds {declared / 1e9:.1f} GB once uncompressed, more than a batch of files", path=path,
                                   fix="delete it and run the coding again; a worker never writes that much")
            table = parquet.read()
        except ProjectError:
            raise
        except Exception as exc:  # pyarrow raises several kinds for damaged files
            raise ProjectError(f"not a readable shard ({str(exc).splitlines()[0][:120]})", path=path,
                               fix="delete it and run the coding again; its files are coded again") from None
    if (table.schema.metadata or {}).get(b"format") != FORMAT.encode():
        raise ProjectError("not a qualcode shard (unknown format)", path=path, fix="give the folder a 'qualcode code --engine dask --output' run wrote")
    missing = [name for name in _COLUMNS if name not in table.column_names]
    if missing:
        raise ProjectError(f"not a qualcode shard (no column '{missing[0]}')", path=path, fix="give the folder a 'qualcode code --engine dask --output' run wrote")
    for number, record in enumerate(table.to_pylist(), start=1):
        try:
            yield _row(record, codes)
        except (_Bad, KeyError, TypeError, ValueError, AttributeError) as exc:
            what = str(exc) if isinstance(exc, _Bad) else f"a damaged value ({type(exc).__name__}: {str(exc)[:80]})"
            raise ProjectError(f"row {number} ({str(record.get('transcript_id'))[:60]!r}) is not what a worker writes: {what}", path=path,
                               fix="delete this shard (or the folder) and code those files again; nothing of it was merged") from None


def _row(record: dict[str, Any], codes: Collection[str] | None) -> ShardRow:
    def text_field(name: str, *, empty: bool = False, optional: bool = False) -> Any:
        value = record[name]
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not empty and not value):
            raise _Bad(f"'{name}' is not text")
        return value

    transcript_id = text_field("transcript_id")
    if len(transcript_id) > 255 or any(ord(character) < 32 for character in transcript_id) or "/" in transcript_id:
        raise _Bad("the transcript id is not one a file name gives")
    metadata = json.loads(text_field("metadata", empty=True) or "{}")
    if not isinstance(metadata, dict) or not all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()):
        raise _Bad("'metadata' is not a mapping of text to text")
    row = ShardRow(text_field("path"), transcript_id, text_field("content_hash"), text_field("pipeline_version"), metadata=metadata,
                   error=text_field("error", empty=True, optional=True))
    text = text_field("text", empty=True, optional=True)
    if text is None:
        return row
    if record["format"] not in _TEXT_FORMATS:
        raise _Bad(f"unknown format {str(record['format'])[:20]!r}")
    file_metadata = json.loads(text_field("file_metadata", empty=True) or "{}")
    if not isinstance(file_metadata, dict):
        raise _Bad("'file_metadata' is not a mapping")
    warnings = record["warnings"] or []
    if not isinstance(warnings, list) or not all(isinstance(item, str) for item in warnings):
        raise _Bad("'warnings' is not a list of text")
    transcript = Transcript(id=transcript_id, path=Path(row.path), format=record["format"], text=text, content_hash=row.content_hash,
                            file_metadata={str(key): str(value) for key, value in file_metadata.items()}, warnings=list(warnings),
                            metadata=metadata)
    segments = []
    end_before = 0
    for item in record["segments"]:
        start, end, position = item["start"], item["end"], item["position"]
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in (start, end, position)):
            raise _Bad("a segment's offsets are not whole numbers")
        if not 0 <= start <= end <= len(text) or start < end_before:
            raise _Bad(f"a segment's offsets {start}-{end} are outside the text or out of order")
        if end - start > MAX_SEGMENT_CHARS:
            raise _Bad(f"a segment of {end - start:,} characters, longer than segmenting makes one ({MAX_SEGMENT_CHARS:,})")
        end_before = end
        segments.append(Segment(position, item["speaker"] if isinstance(item["speaker"], str) else None, start, end, text[start:end],
                                bool(item["codable"])))
    transcript.segments = segments
    suggestions: list[list[Suggestion]] = []
    coded = [segment for segment in segments if segment.codable]
    if len(record["suggestions"]) != len(coded):
        raise _Bad(f"{len(record['suggestions'])} lists of suggestions for {len(coded)} respondent segments")
    for segment, items in zip(coded, record["suggestions"]):
        found = []
        for item in items:
            code, confidence = item["code"], item["confidence"]
            if not isinstance(code, str) or (codes is not None and code not in codes):
                raise _Bad(f"code {str(code)[:40]!r} is not in this project's codebook (a shard of another project?)")
            if not isinstance(confidence, (int, float)) or not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
                raise _Bad(f"confidence {confidence!r} is not a number between 0 and 1")
            evidence = [Evidence.from_json(entry) for entry in json.loads(item["evidence"] or "[]")]
            if any(not 0 <= entry.start <= entry.end <= len(segment.text) for entry in evidence):
                raise _Bad("evidence outside its segment")
            found.append(Suggestion(code, float(confidence), evidence, Source(item["source"]),
                                    None if item.get("applies") is None else bool(item["applies"])))
        suggestions.append(found)
    row.transcript = transcript
    row.suggestions = suggestions
    return row
