"""Segmenting a transcript's text: speaker turns, then coding segments with exact offsets.

A turn starts at a short speaker label followed by a colon; interviewer turns are kept as
uncoded context; long respondent turns are split at paragraphs, then sentences, into
pieces of about equal size. ``text[segment.start:segment.end] == segment.text`` always holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

DEFAULT_INTERVIEWER_LABELS = ("Interviewer", "I", "Q", "Moderator")
# Labels that name the respondent: declared ones are not reported as unknown (any label not an interviewer's is coded)
DEFAULT_RESPONDENT_LABELS = ("Respondent", "R", "A", "Interviewee", "Participant")

# A speaker label: a short name at the start of a line, then a colon and a space
# (or the end of the line). Optional markdown bold around it, as in "**Q:**".
_LABEL = r"[ \t]*\**(?P<label>[^\W\d_][\w.'’\- ]{0,38}?)\**[ \t]*:\**(?:[ \t]+|$)"
_SPEAKER_LINE = re.compile(_LABEL, re.MULTILINE)  # matched at the start of the text
# ...and after every line break: a pattern starting with a newline is searched for as fast as the character itself,
# where one starting with "^" is tried at every position
_NEXT_SPEAKER_LINE = re.compile(r"\n" + _LABEL, re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_MAX_LABEL_WORDS = 4
# The most characters one segment holds, whatever its words: spaCy refuses a text over nlp.max_length (10^6),
# a screen cannot show more, and text without spaces or sentence ends (a pasted log, a run of one letter)
# must still be cut somewhere. Cut at the last space before the limit, else at the limit itself.
MAX_SEGMENT_CHARS = 20_000
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


def speaker_lines(text: str, interviewer_labels: Iterable[str] = ()) -> list[tuple[int, int, str]]:
    """Where each speaker label's line starts, where its label (and the space after it) ends, and the label."""
    found = []
    first = _SPEAKER_LINE.match(text)
    candidates = [(first.start(), first.end(), first.group("label"))] if first else []
    candidates.extend((match.start() + 1, match.end(), match.group("label")) for match in _NEXT_SPEAKER_LINE.finditer(text))
    labels = tuple(interviewer_labels)
    for start, end, label in candidates:
        if is_speaker_label(label, labels):
            found.append((start, end, label))
    return found



@dataclass
class Segment:
    position: int
    speaker: str | None
    start: int
    end: int
    text: str
    codable: bool  # a respondent's words, to be coded; interviewer turns and preambles are context

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True)
class SegmentOptions:
    interviewer_labels: tuple[str, ...] = DEFAULT_INTERVIEWER_LABELS
    max_words: int = 120
    respondent_labels: tuple[str, ...] = DEFAULT_RESPONDENT_LABELS


def undeclared_speakers(segments: Sequence[Any], options: SegmentOptions) -> list[tuple[str, int]]:
    """The speaker labels of a transcript that are neither an interviewer's nor a declared respondent's, with how many
    turns each starts (a turn split into several segments counts once), most turns first."""
    known = {label.casefold() for label in (*options.interviewer_labels, *options.respondent_labels)}
    turns: dict[str, int] = {}
    previous = None
    for segment in segments:
        if segment.speaker is not None and segment.speaker != previous and segment.speaker.casefold() not in known:
            turns[segment.speaker] = turns.get(segment.speaker, 0) + 1
        previous = segment.speaker
    return sorted(turns.items(), key=lambda item: (-item[1], item[0]))


def speakers_warning(name: str, found: Sequence[tuple[str, int]]) -> str:
    """What to tell the researcher about undeclared speaker labels: they were coded as respondents' words."""
    listed = ", ".join(f"{label} ({count} turn{'s' if count != 1 else ''})" for label, count in found[:12])
    more = f" and {len(found) - 12} more" if len(found) > 12 else ""
    return (f"{name}: speaker labels qualcode was not told about: {listed}{more}; their turns are coded as a respondent's. "
            "In qualcode.yaml, add the interviewer's to interviewer_labels (their turns become uncoded context, as a header line "
            "such as 'Date: ...' should) and the respondent's to respondent_labels, then run 'qualcode code'")


def segment_text(text: str, options: SegmentOptions = SegmentOptions()) -> list[Segment]:
    """Split stored text into turns and coding segments with exact offsets."""
    interviewer = {label.casefold() for label in options.interviewer_labels}
    labels = speaker_lines(text, options.interviewer_labels)
    segments: list[Segment] = []

    def add(speaker: str | None, start: int, end: int, codable: bool) -> None:
        for piece_start, piece_end in _bounded(text, _split_block(text, start, end, options.max_words if codable else None)):
            segments.append(Segment(len(segments), speaker, piece_start, piece_end, text[piece_start:piece_end], codable))

    if len(labels) < 2:
        for start, end in _paragraphs(text, 0, len(text)):
            add(None, start, end, True)
        return segments
    if text[: labels[0][0]].strip():
        add(None, 0, labels[0][0], False)
    for index, (_start, label_end, label) in enumerate(labels):
        end = labels[index + 1][0] if index + 1 < len(labels) else len(text)
        speaker = label.strip()
        add(speaker, label_end, end, speaker.casefold() not in interviewer)
    return segments


def neighbours(segments: Sequence[Any]) -> list[tuple[int | None, int | None]]:
    """Per segment (anything with ``codable`` and ``speaker``, in transcript order): the index of the interviewer's turn
    before it (the last segment not to be coded that has a speaker: a preamble asks nothing) and of the respondent
    segment before it, each None where there is none."""
    found: list[tuple[int | None, int | None]] = []
    question: int | None = None
    previous: int | None = None
    for index, segment in enumerate(segments):
        found.append((question, previous))
        if segment.codable:
            previous = index
        elif segment.speaker is not None:
            question = index
    return found


def _bounded(text: str, pieces: list[tuple[int, int]]) -> Iterable[tuple[int, int]]:
    """Pieces no longer than MAX_SEGMENT_CHARS: a longer one is cut at spaces where it has them."""
    for start, end in pieces:
        while end - start > MAX_SEGMENT_CHARS:
            limit = start + MAX_SEGMENT_CHARS
            cut = text.rfind(" ", start + MAX_SEGMENT_CHARS // 2, limit)
            cut = cut if cut > start else limit
            piece = _strip(text, start, cut)
            if piece[1] > piece[0]:
                yield piece
            start, end = _strip(text, cut, end)
        if end > start:
            yield start, end


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
