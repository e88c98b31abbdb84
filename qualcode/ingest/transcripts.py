"""Transcripts: finding interview files, their metadata, and reading one into a segmented transcript.

Every format is turned into one stored text (newlines normalised to ``\\n``); a
segment's ``start``/``end`` are character offsets into that text, so
``text[start:end] == segment.text`` always holds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from qualcode.errors import TranscriptError
from qualcode.files import NotReadable, read_bounded
from qualcode.ingest.readers import blank_controls, decode, docx_text, split_front_matter, srt_text, vtt_text
from qualcode.ingest.segmenting import Segment, SegmentOptions, segment_text, speakers_warning, undeclared_speakers

FORMATS = {".txt": "txt", ".md": "md", ".docx": "docx", ".vtt": "vtt", ".srt": "srt"}
METADATA_FILE = "metadata.csv"
UNKNOWN_ROLE = "unknown"


@dataclass
class Transcript:
    id: str
    path: Path
    format: str
    text: str
    content_hash: str
    file_metadata: dict[str, str]
    segments: list[Segment] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def words(self) -> int:
        return sum(segment.words for segment in self.segments if segment.codable)



# -- discovery and metadata ---------------------------------------------------------


def walk(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """Every file under the given files and folders, in a stable order, with why it is skipped (None: read it).

    Folders are read one at a time (a folder of a million files is never listed whole), hidden
    files and folders are left out, and symbolic links to other folders are followed once each,
    so a link loop ends instead of going round.
    """
    seen: set[str] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            yield from _walk_folder(path, seen)
        elif path.exists():
            yield path, _unsupported(path)
        else:
            yield path, "no such file or folder"


def _walk_folder(folder: Path, seen: set[str]) -> Iterator[tuple[Path, str | None]]:
    real = os.path.realpath(folder)
    if real in seen:
        yield folder, "a link to a folder already read (a symbolic link loop, or two links to one folder); read once"
        return
    seen.add(real)
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        yield folder, f"cannot read this folder ({exc.strerror})"
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        child = Path(entry.path)
        try:
            is_folder = entry.is_dir()
        except OSError:
            is_folder = False
        if is_folder:
            yield from _walk_folder(child, seen)
        elif entry.name != METADATA_FILE:
            yield child, _unsupported(child)


def _unsupported(path: Path) -> str | None:
    if path.suffix.lower() in FORMATS:
        return None
    return f"unsupported format '{path.suffix or path.name}' (qualcode reads {', '.join(FORMATS)})"


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Transcript files under the given files and folders, and the files skipped with why."""
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path, reason in walk(paths):
        if reason is None:
            found.append(path)
        else:
            skipped.append((path, reason))
    return found, skipped


MAX_METADATA_BYTES = 50_000_000  # a row per transcript: even 100,000 interviews are a few MB


def load_metadata(csv_path: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Attributes per transcript id from metadata.csv, and warnings about bad rows."""
    warnings: list[str] = []
    try:
        text = decode(csv_path, read_bounded(csv_path, MAX_METADATA_BYTES), warnings)  # UTF-8, UTF-16/32 by BOM, else cp1252
    except FileNotFoundError:
        return {}, []
    except NotReadable as exc:
        return {}, [f"{csv_path}: {exc}; metadata ignored"]
    except TranscriptError:
        return {}, [f"{csv_path}: binary, not text; metadata ignored. Fix: save it as CSV (UTF-8)"]
    except OSError as exc:
        return {}, [f"{csv_path}: cannot read ({exc.strerror}); metadata ignored"]
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as exc:
        return {}, [f"{csv_path}:{reader.line_num}: {exc}; metadata ignored. Fix: check the quotes around that line's cells"]
    if not rows:
        return {}, [f"{csv_path}: empty; metadata ignored"]
    header = [cell.strip() for cell in rows[0]]
    if not header or not header[0]:
        return {}, [f"{csv_path}:1: the first column has no name; metadata ignored. Fix: put the transcript id in the first column, named e.g. 'transcript'"]
    names = [name.lower().replace(" ", "_") for name in header[1:]]
    if any(not name for name in names):
        return {}, [f"{csv_path}:1: a column has no name; metadata ignored. Fix: name every column"]
    seen_names: dict[str, int] = {}
    for index, name in enumerate(names):  # 'Region', 'region' and 'REGION' are one name once lower-cased: keep each, said
        if name in seen_names:
            renamed = f"{name}_{index + 2}"
            warnings.append(f"{csv_path}:1: columns '{header[seen_names[name] + 1]}' and '{header[index + 1]}' have one name, '{name}', "
                            f"once lower-cased; the second is read as '{renamed}'. Fix: give every column a name of its own")
            names[index] = renamed
        else:
            seen_names[name] = index
    metadata: dict[str, dict[str, str]] = {}
    first_seen: dict[str, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        transcript_id = row[0].strip()
        if not transcript_id:
            warnings.append(f"{csv_path}:{line_no}: row without a transcript id skipped")
            continue
        if transcript_id in metadata:
            warnings.append(
                f"{csv_path}:{line_no}: duplicate id '{transcript_id}' (first at line {first_seen[transcript_id]}); this row is ignored"
            )
            continue
        if len(row) > len(header):
            warnings.append(f"{csv_path}:{line_no}: more cells than columns; extra cells ignored")
        values = {name: value.strip() for name, value in zip(names, row[1:]) if value.strip()}
        if "role" in values:
            values["role"] = values["role"].lower()
        metadata[transcript_id] = values
        first_seen[transcript_id] = line_no
    return metadata, warnings


def metadata_conflicts(name: str, file_metadata: dict[str, str], csv_metadata: dict[str, str] | None) -> list[str]:
    """Where a file's front matter and metadata.csv give an attribute different values (metadata.csv wins), said."""
    found = []
    for key, value in (csv_metadata or {}).items():
        mine = file_metadata.get(key)
        if mine is not None and mine.strip().casefold() != str(value).strip().casefold():
            found.append(f"{name}: '{key}' is '{mine}' in its front matter but '{value}' in {METADATA_FILE}; {METADATA_FILE} wins "
                         "(make them agree to silence this)")
    return found


def merge_metadata(file_metadata: dict[str, str], csv_metadata: dict[str, str] | None) -> dict[str, str]:
    # metadata.csv wins, and its column order is the order researchers chose for their tables.
    merged = dict(csv_metadata or {})
    merged.update({key: value for key, value in file_metadata.items() if key not in merged})
    if "role" in merged:
        merged["role"] = merged["role"].lower()
    return merged


# -- reading files ------------------------------------------------------------------


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: Path, chunk: int = 1 << 20) -> str:
    """content_hash of a file, read in chunks so a large folder is never held in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_transcript(path: str | Path, options: SegmentOptions = SegmentOptions(), data: bytes | None = None) -> Transcript:
    """Read one file into a segmented transcript. Raises TranscriptError if it must be skipped."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TranscriptError(f"unsupported format '{path.suffix}'", path=path, fix=f"convert it to one of {', '.join(FORMATS)}")
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TranscriptError(f"cannot read ({exc.strerror})", path=path) from None
    if not data.strip():
        raise TranscriptError("empty file", path=path, fix="remove it or add the transcript text")
    warnings: list[str] = []
    file_metadata: dict[str, str] = {}
    if fmt == "docx":
        text = docx_text(path, data)
    else:
        raw = decode(path, data, warnings)
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
        raw = blank_controls(path, raw, warnings)
        if fmt in ("txt", "md"):
            text, file_metadata = split_front_matter(path, raw, warnings)
        elif fmt == "vtt":
            text = vtt_text(path, raw)
        else:
            text = srt_text(path, raw)
    if not text.strip():
        raise TranscriptError("no transcript text found", path=path, fix="check the file has the interview text in it")
    transcript = Transcript(
        id=path.stem,
        path=path,
        format=fmt,
        text=text,
        content_hash=content_hash(data),
        file_metadata=file_metadata,
        warnings=warnings,
    )
    transcript.segments = segment_text(text, options)
    undeclared = undeclared_speakers(transcript.segments, options)
    if undeclared:
        warnings.append(speakers_warning(str(path), undeclared))
    if not any(segment.codable for segment in transcript.segments):
        warnings.append(f"{path}: no respondent turns found (only interviewer labels); nothing will be coded")
    return transcript

