"""Reading each transcript format into one text: decoding, front matter, Word, WebVTT and SRT.

Readers raise ``TranscriptError`` for a file that must be skipped and append to
``warnings`` for what was read with a doubt; they never print.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Sequence

import yaml

from qualcode.errors import TranscriptError
from qualcode.segmenting import is_speaker_label

_VOICE_PREFIX = re.compile(r"^\s*<v(?:\.[\w.]+)?\s+([^>]+)>")
_NAME_PREFIX = re.compile(r"^\s*([^\W\d_][\w.'’\- ]{0,38}?)\s*:\s+")
_TAG = re.compile(r"</?[^>]+>")


def decode(path: Path, data: bytes, warnings: list[str]) -> str:
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


def docx_text(path: Path, data: bytes) -> str:
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


def _render_cues(cues: Sequence[tuple[str | None, str, float, float]]) -> str:
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
        speaker, text = _cue_speaker(caption.raw_text, caption.voice)
        cues.append((speaker, text, caption.start_in_seconds, caption.end_in_seconds))
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
        speaker, text = _cue_speaker(subtitle.content, None)
        cues.append((speaker, text, subtitle.start.total_seconds(), subtitle.end.total_seconds()))
    return _render_cues(cues)

