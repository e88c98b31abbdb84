"""Transcripts: reading interview files into text, metadata and coding segments.

Every format is turned into one stored text (newlines normalised to ``\\n``); a
segment's ``start``/``end`` are character offsets into that text, so
``text[start:end] == segment.text`` always holds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from qualcode.errors import TranscriptError

FORMATS = {".txt": "txt", ".md": "md", ".docx": "docx", ".vtt": "vtt", ".srt": "srt"}
METADATA_FILE = "metadata.csv"
DEFAULT_INTERVIEWER_LABELS = ("Interviewer", "I", "Q", "Moderator")
UNKNOWN_ROLE = "unknown"

# A speaker label: a short name at the start of a line, then a colon and a space
# (or the end of the line). Optional markdown bold around it, as in "**Q:**".
_SPEAKER_LINE = re.compile(
    r"^[ \t]*\**(?P<label>[^\W\d_][\w.'’\- ]{0,38}?)\**[ \t]*:\**(?:[ \t]+|$)",
    re.MULTILINE,
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_VOICE_PREFIX = re.compile(r"^\s*<v(?:\.[\w.]+)?\s+([^>]+)>")
_NAME_PREFIX = re.compile(r"^\s*([^\W\d_][\w.'’\- ]{0,38}?)\s*:\s+")
_TAG = re.compile(r"</?[^>]+>")
_MAX_LABEL_WORDS = 4
_LOWERCASE_LABELS = {"interviewer", "respondent", "interviewee", "participant", "moderator", "facilitator", "speaker"}


def is_speaker_label(label: str, interviewer_labels: Iterable[str] = ()) -> bool:
    """A short name: at most four words, each capitalised (or a digit), or a known role word.

    This keeps respondent sentences such as "The problem was: time" from starting a turn.
    """
    words = label.split()
    if not words or len(words) > _MAX_LABEL_WORDS:
        return False
    folded = label.casefold()
    if folded in _LOWERCASE_LABELS or folded in {item.casefold() for item in interviewer_labels}:
        return True
    return all(word[0].isupper() or word[0].isdigit() for word in words)


@dataclass
class Segment:
    position: int
    speaker: str | None
    start: int
    end: int
    text: str
    coded: bool

    @property
    def words(self) -> int:
        return len(self.text.split())


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
        return sum(segment.words for segment in self.segments if segment.coded)


@dataclass(frozen=True)
class SegmentOptions:
    interviewer_labels: tuple[str, ...] = DEFAULT_INTERVIEWER_LABELS
    max_words: int = 120


# -- discovery and metadata ---------------------------------------------------------


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Transcript files under the given files and folders, and the files skipped with why."""
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_dir() or any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                if child.name == METADATA_FILE:
                    continue
                if child.suffix.lower() in FORMATS:
                    found.append(child)
                else:
                    skipped.append((child, f"unsupported format '{child.suffix or child.name}' (qualcode reads {', '.join(FORMATS)})"))
        elif path.is_file():
            if path.suffix.lower() in FORMATS:
                found.append(path)
            else:
                skipped.append((path, f"unsupported format '{path.suffix or path.name}' (qualcode reads {', '.join(FORMATS)})"))
        else:
            skipped.append((path, "no such file or folder"))
    return found, skipped


def load_metadata(csv_path: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Attributes per transcript id from metadata.csv, and warnings about bad rows."""
    if not csv_path.exists():
        return {}, []
    warnings: list[str] = []
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = csv_path.read_bytes().decode("cp1252", errors="replace")
        warnings.append(f"{csv_path}: not UTF-8; read as Windows-1252 (save it as UTF-8 to be sure)")
    except OSError as exc:
        return {}, [f"{csv_path}: cannot read ({exc.strerror}); metadata ignored"]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return {}, [f"{csv_path}: empty; metadata ignored"]
    header = [cell.strip() for cell in rows[0]]
    if not header or not header[0]:
        return {}, [f"{csv_path}:1: the first column has no name; metadata ignored. Fix: put the transcript id in the first column, named e.g. 'transcript'"]
    names = [name.lower().replace(" ", "_") for name in header[1:]]
    if any(not name for name in names):
        return {}, [f"{csv_path}:1: a column has no name; metadata ignored. Fix: name every column"]
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


def merge_metadata(file_metadata: dict[str, str], csv_metadata: dict[str, str] | None) -> dict[str, str]:
    merged = dict(file_metadata)
    merged.update(csv_metadata or {})
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
        text = _docx_text(path, data)
    else:
        raw = _decode(path, data, warnings)
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
        raw = _blank_controls(path, raw, warnings)
        if fmt in ("txt", "md"):
            text, file_metadata = _split_front_matter(path, raw, warnings)
        elif fmt == "vtt":
            text = _vtt_text(path, raw)
        else:
            text = _srt_text(path, raw)
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
    if not any(segment.coded for segment in transcript.segments):
        warnings.append(f"{path}: no respondent turns found (only interviewer labels); nothing will be coded")
    return transcript


def _decode(path: Path, data: bytes, warnings: list[str]) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    head = data[:4096]
    if b"\x00" in head:
        # UTF-16 without a BOM puts a NUL beside every ASCII letter.
        for encoding, zeros in (("utf-16-le", head[1::2]), ("utf-16-be", head[0::2])):
            if zeros.count(0) > 0.8 * len(zeros):
                try:
                    text = data.decode(encoding)
                except UnicodeDecodeError:
                    break
                warnings.append(f"{path}: UTF-16 without a byte-order mark; read as {encoding.upper()}")
                return text
        raise TranscriptError("binary file, not text", path=path, fix="export the transcript as plain text, .docx, .vtt or .srt")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    controls = sum(1 for byte in head if byte < 9 or 13 < byte < 32)
    printable_ascii = sum(1 for byte in head if 32 <= byte < 127 or byte in (9, 10, 13))
    if controls > 0.05 * len(head) or printable_ascii < 0.5 * len(head):
        raise TranscriptError("binary file, not text", path=path, fix="export the transcript as plain text, .docx, .vtt or .srt")
    warnings.append(f"{path}: not UTF-8; read as Windows-1252 (check accented letters, or save the file as UTF-8)")
    return data.decode("cp1252", errors="replace")


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _blank_controls(path: Path, text: str, warnings: list[str]) -> str:
    """Control characters (terminal escapes, bells) become spaces: same length, so offsets hold."""
    count = len(_CONTROLS.findall(text))
    if not count:
        return text
    warnings.append(f"{path}: {count} control characters replaced by spaces")
    return _CONTROLS.sub(" ", text)


def _split_front_matter(path: Path, raw: str, warnings: list[str]) -> tuple[str, dict[str, str]]:
    if not raw.startswith("---\n"):
        return raw, {}
    end = re.search(r"^(?:---|\.\.\.)[ \t]*$", raw[4:], re.MULTILINE)
    if end is None:
        warnings.append(f"{path}:1: front matter is not closed by a '---' line; read as transcript text")
        return raw, {}
    block = raw[4 : 4 + end.start()]
    body = raw[4 + end.end() :]
    body = body[1:] if body.startswith("\n") else body  # only the closing line's newline: offsets stay exact
    try:
        parsed = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 2}" if mark is not None else ""
        warnings.append(f"{path}{line}: front matter is not valid YAML; metadata ignored. Fix: write 'key: value' lines")
        return body, {}
    except RecursionError:
        warnings.append(f"{path}: front matter nests too deeply; metadata ignored")
        return body, {}
    if parsed is None:
        return body, {}
    if not isinstance(parsed, dict):
        warnings.append(f"{path}:2: front matter is not a mapping; metadata ignored. Fix: write 'key: value' lines, e.g. 'role: lead'")
        return body, {}
    metadata: dict[str, str] = {}
    for key, value in parsed.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            warnings.append(f"{path}: front matter key '{key}' is not a single value; ignored")
            continue
        metadata[str(key).strip().lower().replace(" ", "_")] = str(value).strip()
    return body, metadata


def _docx_text(path: Path, data: bytes) -> str:
    import docx
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise TranscriptError(
            "not a readable .docx (it is not a Word package; perhaps an old .doc or another file renamed)",
            path=path,
            fix="open it in Word or LibreOffice and save it again as .docx",
        )
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx surfaces zip, lxml and package errors of many kinds
        raise TranscriptError(
            f"not a readable .docx (damaged Word package: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})",
            path=path,
            fix="open it in Word or LibreOffice and save it again as .docx",
        ) from None
    paragraphs = [paragraph.text.strip() for paragraph in document.paragraphs]
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _cue_speaker(raw_text: str, voice: str | None) -> tuple[str | None, str]:
    text = raw_text
    match = _VOICE_PREFIX.match(text)
    if match:
        voice = voice or match.group(1).strip()
    text = _TAG.sub("", text)
    text = " ".join(text.split())
    if voice is None:
        prefix = _NAME_PREFIX.match(text)
        if prefix and is_speaker_label(prefix.group(1)):
            voice = prefix.group(1).strip()
            text = text[prefix.end() :]
    elif text.startswith(f"{voice}:"):
        text = text[len(voice) + 1 :].strip()
    return voice, text


def _render_cues(cues: list[tuple[str | None, str, float, float]]) -> str:
    """Merge consecutive cues of one speaker into a turn, rendered as 'Name: text'."""
    turns: list[list] = []
    for speaker, text, start, end in cues:
        if not text:
            continue
        if turns and (speaker is None or speaker == turns[-1][0]):
            previous = turns[-1]
            # Captions without speakers: a pause of 2 s or more starts a new paragraph.
            if speaker is None and previous[0] is None and start - previous[2] >= 2.0:
                turns.append([None, [text], end])
                continue
            previous[1].append(text)
            previous[2] = end
        else:
            turns.append([speaker, [text], end])
    blocks = []
    for speaker, texts, _end in turns:
        body = " ".join(texts)
        blocks.append(f"{speaker}: {body}" if speaker else body)
    return "\n\n".join(blocks)


def _vtt_text(path: Path, raw: str) -> str:
    import webvtt
    from webvtt.errors import MalformedFileError

    try:
        captions = webvtt.WebVTT.from_string(raw).captions
    except MalformedFileError as exc:
        raise TranscriptError(f"malformed WebVTT ({exc})", path=path, fix="check it starts with 'WEBVTT' and every cue has a 'start --> end' line") from None
    except Exception as exc:
        raise TranscriptError(f"malformed WebVTT ({exc})", path=path) from None
    cues = []
    for caption in captions:
        speaker, text = _cue_speaker(caption.raw_text, caption.voice)
        cues.append((speaker, text, caption.start_in_seconds, caption.end_in_seconds))
    return _render_cues(cues)


def _srt_text(path: Path, raw: str) -> str:
    import srt

    try:
        subtitles = list(srt.parse(raw))
    except srt.SRTParseError as exc:
        line = raw[: exc.expected_start].count("\n") + 1
        raise TranscriptError(f"malformed SRT near line {line}", path=path, fix="check every cue has a number, a 'start --> end' line and text") from None
    except ValueError as exc:
        raise TranscriptError(f"malformed SRT ({str(exc).splitlines()[0][:80]})", path=path, fix="check the cue timestamps") from None
    cues = []
    for subtitle in subtitles:
        speaker, text = _cue_speaker(subtitle.content, None)
        cues.append((speaker, text, subtitle.start.total_seconds(), subtitle.end.total_seconds()))
    return _render_cues(cues)


# -- segmenting ---------------------------------------------------------------------


def segment_text(text: str, options: SegmentOptions = SegmentOptions()) -> list[Segment]:
    """Split stored text into turns and coding segments with exact offsets."""
    interviewer = {label.casefold() for label in options.interviewer_labels}
    labels = [
        match for match in _SPEAKER_LINE.finditer(text) if is_speaker_label(match.group("label"), options.interviewer_labels)
    ]
    segments: list[Segment] = []

    def add(speaker: str | None, start: int, end: int, coded: bool) -> None:
        for piece_start, piece_end in _split_block(text, start, end, options.max_words if coded else None):
            segments.append(Segment(len(segments), speaker, piece_start, piece_end, text[piece_start:piece_end], coded))

    if len(labels) < 2:
        for start, end in _paragraphs(text, 0, len(text)):
            add(None, start, end, True)
        return segments
    if text[: labels[0].start()].strip():
        add(None, 0, labels[0].start(), False)
    for index, match in enumerate(labels):
        end = labels[index + 1].start() if index + 1 < len(labels) else len(text)
        speaker = match.group("label").strip()
        add(speaker, match.end(), end, speaker.casefold() not in interviewer)
    return segments


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces = []
    cursor = start
    block = text[start:end]
    breaks = list(_PARAGRAPH_BREAK.finditer(block))
    if not breaks and block.count("\n") > 0:
        breaks = list(re.finditer(r"\n+", block))
    for match in breaks:
        pieces.append(_strip(text, cursor, start + match.start()))
        cursor = start + match.end()
    pieces.append(_strip(text, cursor, end))
    return [(s, e) for s, e in pieces if e > s]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        pieces.append(_strip(text, cursor, match.end()))
        cursor = match.end()
    pieces.append(_strip(text, cursor, end))
    return [(s, e) for s, e in pieces if e > s]


def _split_block(text: str, start: int, end: int, max_words: int | None) -> list[tuple[int, int]]:
    start, end = _strip(text, start, end)
    if end <= start:
        return []
    if max_words is None:
        return [(start, end)]
    total = len(text[start:end].split())
    if total <= max_words:
        return [(start, end)]
    units: list[tuple[int, int, int]] = []
    for p_start, p_end in _paragraphs(text, start, end):
        words = len(text[p_start:p_end].split())
        if words > max_words:
            units.extend((s, e, len(text[s:e].split())) for s, e in _sentences(text, p_start, p_end))
        else:
            units.append((p_start, p_end, words))
    # Aim for pieces of equal size rather than a full piece and a small remainder.
    target = total / math.ceil(total / max_words)
    pieces: list[tuple[int, int]] = []
    piece_start, piece_words, piece_end = units[0][0], 0, units[0][1]
    for unit_start, unit_end, words in units:
        if piece_words and (piece_words >= target or piece_words + words > max_words):
            pieces.append((piece_start, piece_end))
            piece_start, piece_words = unit_start, 0
        piece_words += words
        piece_end = unit_end
    pieces.append((piece_start, piece_end))
    return pieces
