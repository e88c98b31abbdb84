from __future__ import annotations

import docx
import pytest
from conftest import REPO, write

from qualcode.errors import TranscriptError
from qualcode.ingest.transcripts import (
    SegmentOptions,
    discover,
    load_metadata,
    merge_metadata,
    read_transcript,
    segment_text,
)
from qualcode.settings import load_settings


def coded(transcript_or_segments):
    segments = getattr(transcript_or_segments, "segments", transcript_or_segments)
    return [segment for segment in segments if segment.codable]


def assert_offsets_exact(text, segments):
    for segment in segments:
        assert text[segment.start : segment.end] == segment.text
        assert segment.text == segment.text.strip() and segment.text


def test_speaker_turns_interviewer_is_context_respondent_is_coded():
    text = "Interviewer: What happened?\n\nRespondent: We rushed.\nIt was hard.\n\nI: Why?\n\nJane Smith: Time.\n"
    segments = segment_text(text)
    assert [(s.speaker, s.text, s.codable) for s in segments] == [
        ("Interviewer", "What happened?", False),
        ("Respondent", "We rushed.\nIt was hard.", True),
        ("I", "Why?", False),
        ("Jane Smith", "Time.", True),
    ]
    assert_offsets_exact(text, segments)


def test_interviewer_labels_are_configurable():
    text = "Facilitator: Question?\nParticipant 3: Answer.\n"
    default = segment_text(text)
    assert [s.codable for s in default] == [True, True]
    custom = segment_text(text, SegmentOptions(interviewer_labels=("Facilitator",)))
    assert [s.codable for s in custom] == [False, True]


def test_respondent_sentences_with_colons_do_not_start_turns():
    text = "Q: What was hard?\nA: Well.\nThe problem was: time.\nwhat I mean: money.\n"
    segments = segment_text(text)
    assert [s.speaker for s in segments] == ["Q", "A"]
    assert segments[1].text == "Well.\nThe problem was: time.\nwhat I mean: money."


def test_text_before_the_first_label_is_uncoded_preamble():
    text = "Interview with lead 3, March\n\nInterviewer: Hello.\nRespondent: Hi.\n"
    segments = segment_text(text)
    assert (segments[0].speaker, segments[0].codable, segments[0].text) == (None, False, "Interview with lead 3, March")


def test_file_without_speaker_labels_is_coded_paragraph_by_paragraph():
    text = "First paragraph about time.\n\nSecond paragraph\nstill second.\n\n\nThird."
    segments = segment_text(text)
    assert [(s.speaker, s.text) for s in segments] == [
        (None, "First paragraph about time."),
        (None, "Second paragraph\nstill second."),
        (None, "Third."),
    ]
    assert all(s.codable for s in segments)


def test_long_turn_is_split_at_paragraphs_then_sentences_into_even_pieces():
    paragraph = " ".join(f"word{i}" for i in range(50)) + "."
    long_paragraph = " ".join(f"Sentence number {i} has exactly seven words." for i in range(40))
    text = f"Interviewer: Go on.\n\nRespondent: {paragraph}\n\n{paragraph}\n\n{paragraph}\n\n{long_paragraph}\n\nInterviewer: Thanks."
    segments = coded(segment_text(text, SegmentOptions(max_words=120)))
    assert_offsets_exact(text, segments)
    assert all(s.words <= 120 for s in segments)
    assert sum(s.words for s in segments) == 150 + 280
    # 430 words need 4 pieces; each is filled to the even size of 107.5 words, never past 120.
    assert [s.words for s in segments] == [100, 113, 112, 105]
    assert all(s.speaker == "Respondent" for s in segments)
    assert len({s.position for s in segments}) == len(segments)


def test_turn_without_sentence_breaks_stays_whole():
    text = "Q: ?\nA: " + " ".join(["and"] * 500)
    segments = coded(segment_text(text, SegmentOptions(max_words=100)))
    assert len(segments) == 1 and segments[0].words == 500


def test_txt_front_matter_is_metadata_and_not_text(tmp_path):
    path = write(tmp_path / "lead-09.txt", "---\nrole: Lead\nSector: third sector\n---\nQ: Hi?\nA: Hello.\n")
    transcript = read_transcript(path)
    assert transcript.id == "lead-09"
    assert transcript.file_metadata == {"role": "Lead", "sector": "third sector"}
    assert merge_metadata(transcript.file_metadata, None)["role"] == "lead"
    assert transcript.text == "Q: Hi?\nA: Hello.\n"
    assert_offsets_exact(transcript.text, transcript.segments)


def test_front_matter_that_is_not_a_mapping_warns(tmp_path):
    path = write(tmp_path / "x.md", "---\n- a\n- b\n---\nQ: Hi?\nA: Hello.\n")
    transcript = read_transcript(path)
    assert transcript.file_metadata == {}
    assert transcript.warnings == [f"{path}:2: front matter is not a mapping; metadata ignored. Fix: write 'key: value' lines, e.g. 'role: lead'"]


def test_metadata_csv_wins_over_front_matter(tmp_path):
    write(tmp_path / "metadata.csv", "transcript,role,Organisation Type\nlead-09,partner,charity\n")
    metadata, warnings = load_metadata(tmp_path / "metadata.csv")
    assert warnings == []
    assert merge_metadata({"role": "lead", "sector": "x"}, metadata["lead-09"]) == {
        "role": "partner",
        "sector": "x",
        "organisation_type": "charity",
    }


def test_metadata_csv_duplicate_id_and_missing_id_column(tmp_path):
    path = write(tmp_path / "metadata.csv", "transcript,role\na,lead\nb,partner\na,stakeholder\n,lead\n")
    metadata, warnings = load_metadata(path)
    assert metadata == {"a": {"role": "lead"}, "b": {"role": "partner"}}
    assert warnings == [
        f"{path}:4: duplicate id 'a' (first at line 2); this row is ignored",
        f"{path}:5: row without a transcript id skipped",
    ]
    path = write(tmp_path / "metadata.csv", ",role\na,lead\n")
    metadata, warnings = load_metadata(path)
    assert metadata == {} and "the first column has no name" in warnings[0]


@pytest.mark.parametrize(
    "data, expected, warning",
    [
        ("Q: Café?\nA: Oui.\n".encode("utf-8"), "Café", None),
        (b"\xef\xbb\xbf" + "Q: Café?\nA: Oui.\n".encode("utf-8"), "Café", None),
        ("Q: Café?\nA: Oui.\n".encode("cp1252"), "Café", "not UTF-8; read as Windows-1252"),
        ("Q: Café?\nA: Oui.\n".encode("utf-16"), "Café", None),
        ("Q: Café?\nA: Oui.\n".encode("utf-16-le"), "Café", "UTF-16 without a byte-order mark"),
        ("Q: Café?\r\nA: Oui.\r\n".encode("utf-8"), "Café?\nA", None),
    ],
)
def test_encodings(tmp_path, data, expected, warning):
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    transcript = read_transcript(path)
    assert expected in transcript.text
    assert "\r" not in transcript.text
    if warning:
        assert len(transcript.warnings) == 1 and warning in transcript.warnings[0] and str(path) in transcript.warnings[0]
    else:
        assert transcript.warnings == []


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b"  \n\n ", "empty file"),
        ("binary.txt", bytes(range(256)) * 4, "binary file, not text"),
        ("fake.docx", b"this is not a zip", "not a readable .docx"),
        ("bad.vtt", b"not a caption file", "malformed WebVTT"),
        ("bad.srt", b"1\nnonsense\n", "malformed SRT"),
        ("scan.pdf", b"%PDF-1.4", "unsupported format '.pdf'"),
    ],
)
def test_unreadable_files_raise_a_transcript_error_naming_the_file(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TranscriptError) as raised:
        read_transcript(path)
    assert str(raised.value).startswith(f"{path}: {message}")


def test_docx_paragraphs_become_turns(tmp_path):
    document = docx.Document()
    document.add_heading("Interview 4", level=1)
    document.add_paragraph("Interviewer: How long did you have?")
    document.add_paragraph("Respondent: Six weeks.")
    document.add_paragraph("Which was not enough.")
    document.save(tmp_path / "lead-04.docx")
    transcript = read_transcript(tmp_path / "lead-04.docx")
    assert transcript.format == "docx"
    assert transcript.text == "Interview 4\n\nInterviewer: How long did you have?\n\nRespondent: Six weeks.\n\nWhich was not enough."
    assert [s.text for s in coded(transcript)] == ["Six weeks.\n\nWhich was not enough."]


def test_vtt_voice_tags_and_name_prefixes_merge_consecutive_cues(tmp_path):
    path = write(
        tmp_path / "p.vtt",
        """\
        WEBVTT

        00:00:01.000 --> 00:00:03.000
        <v Interviewer>How was it?</v>

        00:00:03.500 --> 00:00:05.000
        <v Jane Smith>It was rushed,</v>

        00:00:05.000 --> 00:00:07.000
        <v Jane Smith>very rushed.</v>

        00:00:07.000 --> 00:00:09.000
        Interviewer: Why?

        00:00:09.000 --> 00:00:11.000
        Jane Smith: The deadline.
        """,
    )
    transcript = read_transcript(path)
    assert transcript.text == "Interviewer: How was it?\n\nJane Smith: It was rushed, very rushed.\n\nInterviewer: Why?\n\nJane Smith: The deadline."
    assert [(s.speaker, s.text) for s in coded(transcript)] == [("Jane Smith", "It was rushed, very rushed."), ("Jane Smith", "The deadline.")]


def test_srt_with_name_prefixes(tmp_path):
    path = write(
        tmp_path / "s.srt",
        """\
        1
        00:00:01,000 --> 00:00:02,000
        Interviewer: Question?

        2
        00:00:02,000 --> 00:00:04,000
        R: First part

        3
        00:00:04,000 --> 00:00:05,000
        second part.
        """,
    )
    transcript = read_transcript(path)
    assert [(s.speaker, s.text) for s in coded(transcript)] == [("R", "First part second part.")]


def test_captions_without_speakers_break_paragraphs_at_pauses(tmp_path):
    path = write(
        tmp_path / "n.vtt",
        """\
        WEBVTT

        00:00:01.000 --> 00:00:02.000
        one

        00:00:02.100 --> 00:00:03.000
        two

        00:00:06.000 --> 00:00:07.000
        three
        """,
    )
    assert [s.text for s in coded(read_transcript(path))] == ["one two", "three"]


def test_discover_lists_supported_files_and_skips_others(tmp_path):
    for name in ("a.txt", "b.docx", "c.vtt", "d.srt", "e.md", "metadata.csv", "notes.pdf", ".hidden.txt"):
        (tmp_path / name).write_text("x")
    found, skipped = discover([tmp_path, tmp_path / "missing.txt"])
    assert [p.name for p in found] == ["a.txt", "b.docx", "c.vtt", "d.srt", "e.md"]
    assert [(p.name, reason.split(" (")[0]) for p, reason in skipped] == [
        ("notes.pdf", "unsupported format '.pdf'"),
        ("missing.txt", "no such file or folder"),
    ]


def test_sample_transcripts_cover_formats_roles_and_offsets():
    found, skipped = discover([REPO / "transcripts"])
    assert skipped == []
    assert {p.suffix for p in found} >= {".txt", ".docx", ".vtt", ".srt", ".md"}
    metadata, warnings = load_metadata(REPO / "transcripts" / "metadata.csv")
    assert warnings == []
    roles = []
    settings = load_settings(REPO)  # the sample project's own: it declares the VTT's respondent by name
    for path in found:
        transcript = read_transcript(path, settings.segment_options)
        assert transcript.warnings == []
        if path.suffix in (".vtt", ".srt"):  # without that declaration, the name is reported, once, with the fix
            [warning] = read_transcript(path).warnings
            assert ("Sam Okafor (8 turns)" in warning or "Dr Helen Marr (7 turns)" in warning) and "respondent_labels" in warning
        assert_offsets_exact(transcript.text, transcript.segments)
        assert len(coded(transcript)) >= 6
        assert 500 <= transcript.words <= 2000
        roles.append(merge_metadata(transcript.file_metadata, metadata.get(transcript.id))["role"])
    assert sorted(roles) == ["lead", "lead", "partner", "partner", "stakeholder", "stakeholder"]
