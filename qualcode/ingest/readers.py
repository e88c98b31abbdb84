"""Reading each transcript format into one text: decoding, front matter, Word, WebVTT and SRT.

Readers raise ``TranscriptError`` for a file that must be skipped and append to
``warnings`` for what was read with a doubt; they never print.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from qualcode.errors import TranscriptError
from qualcode.files import bom_encoding
from qualcode.ingest.segmenting import is_speaker_label

_VOICE_PREFIX = re.compile(r"^\s*<v(?:\.[\w.]+)?\s+([^<>]+)>")
_VOICE_TAG = re.compile(r"<v(?:\.[\w.]+)?\s+[^<>]+>")
_NAME_PREFIX = re.compile(r"^\s*([^\W\d_][\w.'’\- ]{0,38}?)\s*:\s+")
_TAG = re.compile(r"</?[^<>]+>")  # [^<>]: a run of '<' without '>' is scanned once, not once per '<'
_DIALOGUE_DASH = re.compile(r"^\s*[-–—]\s*")

_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: a tenth of the time per file


def _lenient(path: Path, data: bytes, encoding: str, warnings: list[str]) -> str:
    """Text in an encoding its byte-order mark declares, with any broken bytes replaced (and counted) rather than lost."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        text = data.decode(encoding, errors="replace")
        warnings.append(f"{path}: {text.count(chr(0xFFFD))} invalid byte sequences for {encoding.upper()} shown as \ufffd")
        return text


def decode(path: Path, data: bytes, warnings: list[str]) -> str:
    declared = bom_encoding(data)
    if declared == "utf-8-sig":
        return _lenient(path, data[3:], "utf-8", warnings)
    if declared is not None:
        return _lenient(path, data, declared, warnings)
    head = data[:4096]
    if b"\x00" in head:
        # UTF-32 without a BOM: three NULs beside every ASCII letter
        for encoding, zeros in (("utf-32-le", head[1::4] + head[2::4] + head[3::4]), ("utf-32-be", head[0::4] + head[1::4] + head[2::4])):
            if len(head) >= 8 and len(head) % 4 == 0 and zeros.count(0) > 0.9 * len(zeros):
                try:
                    text = data.decode(encoding)
                except UnicodeDecodeError:
                    break
                warnings.append(f"{path}: UTF-32 without a byte-order mark; read as {encoding.upper()}")
                return text
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


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0, DEL and C1: never text, some terminals act on them


def blank_controls(path: Path, text: str, warnings: list[str]) -> str:
    """Control characters (terminal escapes, bells) become spaces: same length, so offsets hold."""
    count = len(_CONTROLS.findall(text))
    if not count:
        return text
    warnings.append(f"{path}: {count} control characters replaced by spaces")
    return _CONTROLS.sub(" ", text)


def split_front_matter(path: Path, raw: str, warnings: list[str]) -> tuple[str, dict[str, str]]:
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
        parsed = yaml.load(block, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader: libyaml's when installed)
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


DOCX_MAX_EXPANDED = 64 * 1024 * 1024  # bytes of XML a .docx may expand to; a long interview is a few MB
DOCX_MAX_RATIO = 200  # XML compresses 5-20 times; a part that expands 200 times more is a decompression bomb


def docx_text(path: Path, data: bytes, *, max_expanded: int = DOCX_MAX_EXPANDED) -> str:
    """The text of a Word file in reading order: paragraphs, table rows (a 'Speaker | words' row becomes
    'Speaker: words'), content controls and tracked insertions; tracked deletions are left out."""
    import docx
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise TranscriptError(
            "not a readable .docx (it is not a Word package; perhaps an old .doc or another file renamed)",
            path=path,
            fix="open it in Word or LibreOffice and save it again as .docx",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TranscriptError(f"not a readable .docx (damaged Word package: {exc})", path=path) from None
    # zipfile holds each part to its declared size, so checking the declared sizes bounds what parsing may read.
    expanded = sum(part.file_size for part in parts)
    swollen = [part for part in parts if part.file_size > 1024 * 1024 and part.file_size > DOCX_MAX_RATIO * max(1, part.compress_size)]
    if expanded > max_expanded or swollen:
        raise TranscriptError(
            f"the Word package expands to {expanded / 1024 / 1024:.0f} MB"
            + (f" ({swollen[0].filename} {swollen[0].file_size // max(1, swollen[0].compress_size)} times its packed size)" if swollen else "")
            + f", more than qualcode reads from one .docx ({max_expanded // 1024 // 1024} MB, at most {DOCX_MAX_RATIO} times packed)",
            path=path,
            fix="open it in Word or LibreOffice and save the text alone as .docx or .txt; a compressed bomb is not an interview",
        )
    try:
        document = docx.Document(io.BytesIO(data))
        return "\n\n".join(line for line in _docx_lines(document.element.body) if line)
    except Exception as exc:  # python-docx surfaces zip, lxml and package errors of many kinds
        raise TranscriptError(
            f"not a readable .docx (damaged Word package: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})",
            path=path,
            fix="open it in Word or LibreOffice and save it again as .docx",
        ) from None


def _docx_lines(body: Any) -> Iterator[str]:
    from docx.oxml.ns import qn

    paragraph, table, row, cell, block, content = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc"), qn("w:sdt"), qn("w:sdtContent")
    wrappers = {qn("w:customXml"), qn("w:ins"), qn("w:moveTo"), qn("w:smartTag")}  # their paragraphs are the document's own
    pending = list(reversed(list(body)))  # a stack, not recursion: content controls may nest deeply
    while pending:
        element = pending.pop()
        if element.tag == paragraph:
            yield _paragraph_text(element)
        elif element.tag == table:
            for table_row in element.findall(row):
                cells = [" ".join(filter(None, (_paragraph_text(p) for p in table_cell.iter(paragraph)))) for table_cell in table_row.findall(cell)]
                cells = [text for text in cells if text]
                if len(cells) >= 2 and is_speaker_label(cells[0].rstrip(":")):
                    yield f"{cells[0].rstrip(':')}: {' '.join(cells[1:])}"
                elif cells:
                    yield " ".join(cells)
        elif element.tag == block:
            inner = element.find(content)
            if inner is not None:
                pending.extend(reversed(list(inner)))
        elif element.tag in wrappers:
            pending.extend(reversed(list(element)))


def _paragraph_text(element: Any) -> str:
    from docx.oxml.ns import qn

    text, tab = qn("w:t"), qn("w:tab")
    # Left out: the old place of moved text (w:moveFrom: the text is at its new place, w:moveTo), and the legacy copy
    # of a text box or shape that Word writes beside the modern one (mc:Fallback), which would say it twice.
    skipped = {qn("w:moveFrom"), _FALLBACK, qn("w:del")}
    pieces = []
    for node in element.iter(text, tab, qn("w:br"), qn("w:cr")):
        if any(ancestor.tag in skipped for ancestor in node.iterancestors()):
            continue
        pieces.append(node.text or "" if node.tag == text else "\t" if node.tag == tab else "\n")
    return "".join(pieces).strip()


_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"


def _cue_pieces(raw_text: str, voice: str | None) -> list[tuple[str | None, str, bool]]:
    """What one caption cue says, by whom: (speaker, text, starts a new turn). A cue may hold several voices
    (`<v Ann>Yes.</v> <v Bob>No.</v>`) or subtitle dialogue lines (`- Ann: Yes.` / `- No.`); each keeps its own turn."""
    tags = list(_VOICE_TAG.finditer(raw_text))
    if len(tags) > 1:
        ends = [tag.start() for tag in tags[1:]] + [len(raw_text)]
        head = _cue_speaker(raw_text[: tags[0].start()], voice) if raw_text[: tags[0].start()].strip() else None
        pieces = [(*head, False)] if head and head[1] else []
        pieces += [(*_cue_speaker(raw_text[tag.start() : end], None), True) for tag, end in zip(tags, ends)]
        return pieces
    lines = [line for line in raw_text.splitlines() if line.strip()]
    if len(lines) > 1 and all(_DIALOGUE_DASH.match(line) for line in lines):
        return [(*_cue_speaker(_DIALOGUE_DASH.sub("", line, count=1), None), True) for line in lines]
    return [(*_cue_speaker(raw_text, voice), False)]


def _cue_speaker(raw_text: str, voice: str | None) -> tuple[str | None, str]:
    text = raw_text
    match = _VOICE_PREFIX.match(text)
    if match:
        voice = voice or match.group(1).strip()
    text = html.unescape(_TAG.sub("", text))  # captions escape &, < and > as in HTML
    text = " ".join(text.split())
    if voice is None:
        prefix = _NAME_PREFIX.match(text)
        if prefix and is_speaker_label(prefix.group(1)):
            voice = prefix.group(1).strip()
            text = text[prefix.end() :]
    elif text.startswith(f"{voice}:"):
        text = text[len(voice) + 1 :].strip()
    return voice, text


def _render_cues(cues: Sequence[tuple[str | None, str, float, float, bool]]) -> str:
    """Merge consecutive cues of one speaker into a turn, rendered as 'Name: text'."""
    turns: list[list] = []
    for speaker, text, start, end, apart in cues:
        if not text:
            continue
        if turns and not apart and (speaker is None or speaker == turns[-1][0]):
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


def vtt_text(path: Path, raw: str) -> str:
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
        for speaker, text, apart in _cue_pieces(caption.raw_text, caption.voice):
            cues.append((speaker, text, caption.start_in_seconds, caption.end_in_seconds, apart))
    return _render_cues(cues)


def srt_text(path: Path, raw: str) -> str:
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
        for speaker, text, apart in _cue_pieces(subtitle.content, None):
            cues.append((speaker, text, subtitle.start.total_seconds(), subtitle.end.total_seconds(), apart))
    return _render_cues(cues)

