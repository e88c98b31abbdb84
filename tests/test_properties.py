"""Property-based tests: any input reads without an unhandled exception, and offsets are exact.

QUALCODE_PROPERTY_EXAMPLES sets examples per test (default 100); QUALCODE_PROPERTY_REPORT
names a JSON file that receives the number of examples each test ran.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualcode.codebook import Codebook, parse_codebook
from qualcode.errors import CodebookError, TranscriptError
from qualcode.ingest.transcripts import SegmentOptions, read_transcript, segment_text

EXAMPLES = int(os.environ.get("QUALCODE_PROPERTY_EXAMPLES", "100"))
RUN = Counter()
PROFILE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def report_examples():
    yield
    target = os.environ.get("QUALCODE_PROPERTY_REPORT")
    if target:
        Path(target).write_text(json.dumps(dict(RUN)))


PREFIXES = st.sampled_from(["Interviewer: ", "I: ", "Q: ", "R: ", "A: ", "Jane Smith: ", "**Q:** ", "Respondent:", "note: ", "The problem was: ", "10:30 ", "", "", ""])
NEWLINES = st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\n \t\n", "\u2028", "\x0b", "\x0c", "\x85", " "])
CHARS = st.characters(blacklist_categories=("Cs",))
LINES = st.one_of(
    st.text(CHARS, max_size=120),
    st.text(st.sampled_from("ab. ?!\n:\t"), max_size=300),
    st.text(CHARS, min_size=800, max_size=3000),
    st.just("word " * 400),
)
DOCUMENTS = st.lists(st.tuples(PREFIXES, LINES, NEWLINES), max_size=25).map(lambda parts: "".join(a + b + c for a, b, c in parts))


def assert_exact(text, segments):
    positions = [s.position for s in segments]
    assert positions == list(range(len(segments)))
    for segment in segments:
        assert 0 <= segment.start < segment.end <= len(text)
        assert text[segment.start : segment.end] == segment.text
        assert segment.text.strip() == segment.text


@PROFILE
@given(DOCUMENTS, st.integers(min_value=10, max_value=200))
def test_segmenter_offsets_always_slice_their_text(text, max_words):
    RUN["segmenter"] += 1
    assert_exact(text, segment_text(text, SegmentOptions(max_words=max_words)))


@PROFILE
@given(DOCUMENTS)
def test_speaker_lines_are_the_labels_found_at_every_line_start(text):
    """Issue 28: labels are searched for after each line break (as fast as the character itself) and at the start;
    they are what the pattern anchored at every line start ("^", multi-line) finds."""
    import re

    from qualcode.ingest.segmenting import _LABEL, DEFAULT_INTERVIEWER_LABELS, is_speaker_label, speaker_lines

    RUN["speaker lines"] += 1
    anchored = re.compile("^" + _LABEL, re.MULTILINE)
    expected = [(match.start(), match.end(), match.group("label")) for match in anchored.finditer(text)
                if is_speaker_label(match.group("label"), DEFAULT_INTERVIEWER_LABELS)]
    assert speaker_lines(text, DEFAULT_INTERVIEWER_LABELS) == expected


@PROFILE
@given(st.text(st.sampled_from("ab?!(\n\t\u00a0 "), max_size=400), st.integers(min_value=0, max_value=400), st.integers(min_value=60, max_value=70))
def test_the_quick_check_for_long_chunks_misses_none(text, at, run):
    """Issue 28: ``bounded`` first checks that every 32-character block has a space; a run of 64 characters without
    whitespace always fails that check, so the full search still sees it."""
    import re

    from qualcode.suggest.pipeline import _may_have_long_chunk

    RUN["long chunks"] += 1
    for candidate in (text, text[:at] + "x" * run + text[at:]):
        if re.search(r"\S{64,}", candidate):
            assert _may_have_long_chunk(candidate)


SUFFIXES = st.sampled_from([".txt", ".md", ".vtt", ".srt", ".docx"])


@PROFILE
@given(st.one_of(DOCUMENTS.map(lambda t: t.encode("utf-8")), st.binary(max_size=4000), DOCUMENTS.map(lambda t: t.encode("utf-16-le", "replace"))), SUFFIXES)
def test_readers_never_raise_anything_but_a_transcript_error(data, suffix):
    RUN["readers"] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"t{suffix}"
        path.write_bytes(data)
        try:
            transcript = read_transcript(path)
        except TranscriptError as error:
            assert str(error).startswith(str(path))
            return
        assert "\r" not in transcript.text
        assert_exact(transcript.text, transcript.segments)


CUE_TEXT = st.text(CHARS, max_size=60).map(lambda t: t.replace("-->", "").replace("\n", " "))


@PROFILE
@given(st.lists(st.tuples(st.sampled_from(["<v Ann>", "<v Bob>", "Ann: ", "Q: ", ""]), CUE_TEXT, st.integers(0, 5000), st.integers(0, 3000)), max_size=20))
def test_captions_with_any_cues_keep_exact_offsets(cues):
    RUN["captions"] += 1
    lines = ["WEBVTT", ""]
    for speaker, text, start, length in cues:
        s, e = start / 100, (start + length) / 100
        stamp = lambda x: f"{int(x // 3600):02d}:{int(x % 3600 // 60):02d}:{x % 60:06.3f}"  # noqa: E731
        lines += [f"{stamp(s)} --> {stamp(e)}", f"{speaker}{text}", ""]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.vtt"
        path.write_text("\n".join(lines), encoding="utf-8")
        try:
            transcript = read_transcript(path)
        except TranscriptError:
            return
        assert_exact(transcript.text, transcript.segments)


KEYS = st.sampled_from(["id", "label", "description", "include", "exclude", "keywords", "phrases", "patterns", "examples", "children", "manual", "codes", "name", "version", "zzz", "LOWER", "OP"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(CHARS, max_size=12), st.sampled_from(["a", "b-c", "Bad Id", "x1", ""]))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(KEYS, st.text(max_size=5)), inner, max_size=5)), max_leaves=40)
DOCS = st.one_of(
    TREES.map(lambda tree: yaml.safe_dump(tree, allow_unicode=True)),
    st.dictionaries(st.just("codes"), st.lists(TREES, max_size=4), min_size=1).map(lambda tree: yaml.safe_dump(tree, allow_unicode=True)),
    st.text(st.sampled_from("codes:-id &*[]{},'\"\n #!|>"), max_size=200),
    st.text(CHARS, max_size=200),
)


@PROFILE
@given(DOCS)
def test_codebook_loader_gives_a_codebook_or_a_located_error(text):
    RUN["codebook"] += 1
    try:
        codebook = parse_codebook(text, path="cb.yaml")
    except CodebookError as error:
        assert error.path == "cb.yaml"
        assert str(error).startswith("cb.yaml")
        return
    assert isinstance(codebook, Codebook) and len(codebook) >= 1
    for code in codebook.codes.values():
        assert code.has_rules or code.children or code.manual
