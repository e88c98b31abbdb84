"""Hardening, second part: decisions that must stay on their own segment, exports of huge codebooks in bounded
memory, read-only projects, consistent reads while others write, full disks, bad gold files and output paths,
damaged databases, and text longer than spaCy takes at once. Each test builds its own small project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SMALL_CODEBOOK, call, old_database, open_store, write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.run.coding import code
from qualcode.store import Entry
from qualcode.store.matching import match_segments
from qualcode.store.schema import SCHEMA_VERSION

runner = CliRunner()


@pytest.fixture(autouse=True)
def _own_sqlite_project(monkeypatch):
    monkeypatch.delenv("QUALCODE_DATABASE_URL", raising=False)


def _project(tmp_path: Path, transcripts: dict[str, str], codebook: str = SMALL_CODEBOOK) -> Path:
    write(tmp_path / "codebook.yaml", codebook)
    (tmp_path / "qualcode.yaml").write_text("retrain_after: 0\n", encoding="utf-8")
    for name, text in transcripts.items():
        path = tmp_path / "transcripts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


# -- decisions stay on their own segment ------------------------------------------------------------

TWICE = ("Interviewer: First question?\n\nRespondent: The deadline, as always.\n\n"
         "Interviewer: Second question?\n\nRespondent: The deadline, as always.\n")


def _verdicts(project: Path) -> list[tuple[str, dict[str, str]]]:
    with open_store(project) as store:
        segments = store.codable_segments()
        states = store.coder_states("ann")
        return [(segment.text, dict(states[segment.id].codes) if segment.id in states else {}) for segment in segments]


def test_a_decision_never_moves_to_an_identical_answer_when_the_one_before_is_deleted(tmp_path):
    project = _project(tmp_path, {"lead-01.txt": TWICE})
    call(code, project)
    with open_store(project) as store:
        first, second = store.codable_segments()
        store.record([Entry(first.id, "timescale", "rejected"), Entry(first.id, None, "reviewed")], coder="ann")
        store.record([Entry(second.id, "timescale", "accepted"), Entry(second.id, None, "reviewed")], coder="ann")
    (project / "transcripts" / "lead-01.txt").write_text(TWICE.split("\n\n", 2)[2], encoding="utf-8")
    call(code, project)
    assert _verdicts(project) == [("The deadline, as always.", {"timescale": "accepted"})]


def test_when_the_old_segment_cannot_be_told_both_decisions_are_kept_and_the_segment_comes_back(tmp_path):
    same = "Interviewer: Q?\n\nRespondent: The deadline, as always.\n\n"
    project = _project(tmp_path, {"lead-01.txt": same * 2})
    call(code, project)
    with open_store(project) as store:
        first, second = store.codable_segments()
        store.record([Entry(first.id, "timescale", "rejected")], coder="ann")
        store.record([Entry(second.id, "timescale", "accepted")], coder="ann")
    (project / "transcripts" / "lead-01.txt").write_text(same, encoding="utf-8")  # which of the two went, no one can tell
    result = call(code, project)
    assert result.ambiguous == 1 and result.retired_with_decisions == 2
    assert _verdicts(project) == [("The deadline, as always.", {})]
    with open_store(project) as store:
        assert sorted(d.verdict for d in store.decisions("ann")) == ["accepted", "rejected"]  # nothing lost


def test_segment_matching_keeps_order_and_trusts_only_what_it_can_tell():
    from qualcode.store.matching import questions

    signatures = ["q1", "rejected", "q2", "accepted"]
    old = ["Q1", "A", "Q2", "A"]

    def match(new: list[str]):  # as the store calls it: each answer knows the question it follows
        return match_segments(old, new, signatures, questions(old, [not text.startswith("Q") for text in old]),
                              questions(new, [not text.startswith("Q") for text in new]))

    assert match(["Q2", "A"]).reused == {0: 2, 1: 3}
    assert match(["Q1", "A"]).reused == {0: 0, 1: 1}
    assert match(["Q1", "A", "new", "Q2", "A"]).reused == {0: 0, 1: 1, 3: 2, 4: 3}
    # The sequence alone cannot tell which 'A' is left: deleting 'Q2 A' and deleting 'A Q2' read the same.
    assert match_segments(old, ["Q1", "A"], signatures).ambiguous == [1]
    # Interchangeable segments (same decisions) are matched without fuss.
    assert match_segments(["A", "A"], ["A"], ["", ""]).reused == {0: 0}
    assert match_segments(["A", "A"], ["A"], ["x", "y"]).ambiguous == [0]
    # A moved segment is still found.
    assert match_segments(["Q", "A", "B"], ["B", "Q", "A"], ["", "a", "b"]).reused == {0: 2, 1: 0, 2: 1}


# -- text longer than the libraries take at once -------------------------------------------------------


def test_unbroken_text_longer_than_spacy_takes_is_cut_into_segments_and_coded(tmp_path):
    from qualcode.ingest.segmenting import MAX_SEGMENT_CHARS, segment_text

    text = "Interviewer: Q?\n\nRespondent: " + "a" * 1_500_000 + " the deadline " + "b" * 300_000 + "\n"
    segments = segment_text(text)
    assert all(len(segment.text) <= MAX_SEGMENT_CHARS for segment in segments)
    assert all(text[s.start : s.end] == s.text for s in segments)
    assert sum(len(s.text) for s in segments if s.codable) >= 1_800_000  # nothing dropped
    project = _project(tmp_path, {"lead-01.txt": text, "lead-02.txt": "Respondent: " + " ".join(["word"] * 300_000) + " deadline\n"})
    result = call(code, project)
    assert sorted(result.imported) == ["lead-01", "lead-02"] and not result.skipped
    from qualcode.exchange.export import export

    call(export, project, formats="xlsx", status="suggested")
    from openpyxl import load_workbook

    sheet = load_workbook(project / "exports" / "themes.xlsx", read_only=True)["Excerpts"]
    assert max(len(str(row[0])) for row in sheet.iter_rows(values_only=True, min_col=7, max_col=7) if row[0]) <= 32_767


# -- huge codebooks: exports in time proportional to the codings -------------------------------------------


def _codings(pairs: list[tuple[int, str]]):
    from qualcode.analysis.counts import Coding

    return [Coding(segment, "t", segment, "R", 0, 1, "x", code, "suggested", "", 0.5) for segment, code in pairs]


def test_cooccurrence_counts_only_pairs_that_occur_and_says_what_its_bounds_leave_out():
    import random

    from qualcode.analysis.counts import cooccurrence
    from qualcode.codebook import parse_codebook

    codes = [f"c{i}" for i in range(40)]
    codebook = parse_codebook("name: x\ncodes:\n" + "".join(f"  - {{id: {c}, label: {c}, manual: true}}\n" for c in codes))
    generator = random.Random(7)
    pairs = sorted({(generator.randrange(60), generator.choice(codes)) for _ in range(600)})
    found = _codings(pairs)
    table = cooccurrence(found, codebook)
    segments_of: dict[str, set[int]] = {}
    for segment, code_id in pairs:
        segments_of.setdefault(code_id, set()).add(segment)
    expected = {
        (a, b): len(segments_of[a] & segments_of[b])
        for i, a in enumerate(codes) for b in codes[i + 1 :] if a in segments_of and b in segments_of and segments_of[a] & segments_of[b]
    }
    assert {(row[0], row[1]): row[4] for row in table.rows} == expected and table.attrs["note"] == ""
    assert [row[4] for row in table.rows] == sorted((row[4] for row in table.rows), reverse=True)
    bounded = cooccurrence(found, codebook, max_work=2_000, max_pairs=25)
    assert len(bounded.rows) == 25 and "most applied of 40 codes" in bounded.attrs["note"] and "25 most frequent" in bounded.attrs["note"]


def test_a_codebook_too_wide_for_a_sheet_still_exports_and_says_what_the_workbook_cut(tmp_path):
    from qualcode.analysis.counts import Table
    from qualcode.exchange.spreadsheet import workbook_bytes

    notes: list[str] = []
    columns = ["transcript", *(f"c{i}" for i in range(17_000))]
    data = workbook_bytes({"Respondents": Table(columns, [["t1", *([1] * 17_000)]], {"code_columns": columns[1:]})}, notes)
    assert data[:2] == b"PK" and "16,384 columns of 1 x 17,001" in notes[0]


# -- read-only projects and full disks: real mounts, in a mount namespace of the test's own -------------------

QUALCODE = [sys.executable, "-m", "qualcode"]


def _in_own_mounts(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (nothing it mounts is seen outside, and all goes when it ends)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs 'unshare -m' (root, util-linux) to mount a read-only or a full file system")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-euc", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "120", **(env or {})})


def _reviewed_project(tmp_path: Path) -> Path:
    project = _project(tmp_path / "study", {"lead-01.txt": TWICE})
    call(code, project)
    with open_store(project) as store:
        segment = store.codable_segments()[0]
        store.record([Entry(segment.id, "timescale", "accepted"), Entry(segment.id, None, "reviewed")], coder="ann")
    return project


def test_a_read_only_project_is_read_by_reading_commands_and_refused_by_writing_ones(tmp_path):
    project = _reviewed_project(tmp_path)
    q = " ".join(QUALCODE)
    out = tmp_path / "out"
    script = f"""
    mount --bind {project} {project} && mount -o remount,ro,bind {project}
    for command in status stats check "export --output {out}" "agreement coder:ann machine"; do
      echo "== $command"; {q} $command -p {project} 2>&1 && echo "exit 0" || echo "exit $?"
    done
    for command in export "code" "review --coder ann --plain" train; do
      echo "== $command"; echo q | {q} $command -p {project} 2>&1 && echo "exit 0" || echo "exit $?"
    done
    """
    done = _in_own_mounts(script)
    assert done.returncode == 0, done.stderr
    blocks = {block.split("\n", 1)[0]: block for block in done.stdout.split("== ")[1:]}
    for reading in ("status", "stats", "check", f"export --output {out}", "agreement coder:ann machine"):
        assert blocks[reading].rstrip().endswith("exit 0"), blocks[reading]
        assert "Traceback" not in blocks[reading] and "afresh" not in blocks[reading] and "damaged" not in blocks[reading]
    assert (out / "themes.xlsx").exists() and "OK: schema version" in blocks["check"]
    for writing in ("export", "code", "review --coder ann --plain", "train"):
        block = blocks[writing]
        assert "read-only" in block and "Traceback" not in block and "afresh" not in block and "exit 1" in block, block
    assert not (project / "exports").exists() or not any((project / "exports").iterdir())


def test_a_full_disk_is_named_as_such_by_every_writing_command_and_the_database_stays_intact(tmp_path):
    project = _reviewed_project(tmp_path)
    (project / "transcripts" / "lead-02.txt").write_text("Interviewer: Q?\n\nRespondent: " + "The deadline came. " * 3000 + "\n", encoding="utf-8")
    q = " ".join(QUALCODE)
    disk = tmp_path / "disk"
    disk.mkdir()
    # Each command meets a disk with only so many KB left: none for the database's writes, some (enough to open
    # the database for reading) for the commands that write files.
    script = f"""
    mount -t tmpfs -o size=4m tmpfs {disk}
    cp -r {project} {disk}/study
    cd {disk}/study
    fill() {{ rm -f {disk}/filler; dd if=/dev/zero of={disk}/filler bs=1k count=$(( $(df -k --output=avail {disk} | tail -1) - $1 )) 2>/dev/null || true; }}
    run() {{ echo "== $1"; fill $2; printf 'a\\na\\nq\\n' | {q} $1 2>&1 && echo "exit 0" || echo "exit $?"; }}
    run code 0
    fill 1000; {q} code >/dev/null 2>&1
    run "review --coder bob --plain" 0
    run export 120
    run backup 120
    rm -f {disk}/filler
    echo "== check"; {q} check 2>&1 || true
    echo "== leftovers"; find {disk} -name '*.tmp'
    """
    done = _in_own_mounts(script)
    assert done.returncode == 0, done.stderr
    blocks = {block.split("\n", 1)[0]: block for block in done.stdout.split("== ")[1:]}
    for command in ("code", "review --coder bob --plain", "export", "backup"):
        block = blocks[command]
        assert "disk is full" in block and "Traceback" not in block and "no transaction" not in block, block
        assert block.rstrip().splitlines()[-1] == "exit 1", block
    assert "exports" in blocks["export"] and "backups" in blocks["backup"]  # the message names where
    assert f"OK: schema version {SCHEMA_VERSION}, 2 transcripts" in blocks["check"], blocks["check"]
    assert blocks["leftovers"].strip() == "leftovers"


# -- reading and reviewing while `qualcode code` writes ------------------------------------------------------


def test_a_review_survives_its_segment_being_replaced_by_a_reimport(tmp_path):
    from qualcode.project import Project
    from qualcode.review.session import ReviewSession

    project = _project(tmp_path, {"lead-01.txt": TWICE})
    call(code, project)
    with Project.open(project) as opened:
        session = ReviewSession(opened, coder="ann")
        assert session.accept_all().moved  # the first answer: recorded
        on_screen = session.current
        assert on_screen is not None and on_screen.text == "The deadline, as always."
        # Meanwhile the file changes under the coder and is re-imported: the second answer is replaced.
        (project / "transcripts" / "lead-01.txt").write_text(TWICE.rsplit("as always.", 1)[0] + "as ever.\n", encoding="utf-8")
        call(code, project)
        result = session.accept_all()
        assert "replaced" in result.message and "not recorded" in result.message
        assert session.current is not None and session.current.text == "The deadline, as ever."
        session.accept_all()
        assert session.finished
    assert [verdicts for _text, verdicts in _verdicts(project)] == [{"timescale": "accepted"}, {"timescale": "accepted"}]


def test_stats_status_and_export_read_one_consistent_state_while_code_imports(tmp_path):
    from qualcode.analysis.counts import theme_table
    from qualcode.analysis.status import review_status
    from qualcode.exchange.export import export

    project = _project(tmp_path, {f"lead-{n:03}.txt": TWICE.replace("First", f"Number {n}") for n in range(6)})
    call(code, project)
    for n in range(6, 400):
        (project / "transcripts" / f"lead-{n:03}.txt").write_text(TWICE.replace("First", f"Number {n}") * 3, encoding="utf-8")
    for n in range(6):  # changed files: their segments are replaced while the readers read
        (project / "transcripts" / f"lead-{n:03}.txt").write_text(TWICE.replace("First", f"Changed {n}"), encoding="utf-8")
    writer = subprocess.Popen([*QUALCODE, "code", "-p", str(project), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reads = 0
    try:
        while writer.poll() is None or reads < 3:
            call(theme_table, project, status="suggested")
            call(review_status, project)
            call(export, project, formats="csv", status="suggested")
            reads += 1
    finally:
        _out, errors = writer.communicate(timeout=300)
    assert writer.returncode == 0, errors
    assert reads >= 3


# -- gold files and output paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, content, expected", [
    ("short.csv", "transcript,code,start,end\nlead-01,timescale,10\n", "whole numbers"),
    ("words.csv", "transcript,start,end,code\nlead-01,ten,20,timescale\n", "whole numbers"),
    ("huge.csv", "transcript,text,code\nlead-01,\"" + "x" * 1_200_000 + "\",timescale\n", "cannot be read"),
    ("nul.csv", "transcript,start,end,code\nlead-01,1\x00,2,timescale\n", "NUL"),
    ("folder.csv", None, "folder"),
    ("latin.csv", b"transcript,text,code\nlead-01,caf\xe9,timescale\n", "not UTF-8"),
])
def test_a_broken_gold_file_ends_in_one_located_message(tmp_path, name, content, expected):
    project = _project(tmp_path / "study", {"lead-01.txt": TWICE})
    call(code, project)
    gold = tmp_path / name
    if content is None:
        gold.mkdir()
    elif isinstance(content, bytes):
        gold.write_bytes(content)
    else:
        gold.write_text(content, encoding="utf-8")
    for args in (["agreement", f"gold:{gold}", "machine"], ["evaluate", str(gold)]):
        result = runner.invoke(app, [*args, "-p", str(project)])
        assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert expected in result.output and str(gold) in result.output, result.output


def test_a_gold_range_that_is_empty_or_negative_is_named_and_skipped(tmp_path):
    project = _project(tmp_path / "study", {"lead-01.txt": TWICE})
    call(code, project)
    gold = tmp_path / "gold.csv"
    gold.write_text("transcript,start,end,code\nlead-01,50,10,timescale\nlead-01,40,60,timescale\n", encoding="utf-8")
    result = runner.invoke(app, ["agreement", f"gold:{gold}", "machine", "-p", str(project)])
    assert result.exit_code == 0 and "gold.csv:2: range 50-10 is empty or negative" in " ".join(result.output.split())


@pytest.mark.parametrize("command", [["export", "--output", "{file}"], ["backup", "--output", "{file}"], ["backup", "--output", "{folder}"],
                                     ["agreement", "coder:ann", "machine", "--output", "{folder}"],
                                     ["export", "--output", "{file}/inside"], ["backup", "--output", "{file}/inside.db"]])
def test_an_output_path_that_cannot_be_written_ends_in_one_message_and_leaves_nothing_behind(tmp_path, command):
    project = _reviewed_project(tmp_path)
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    args = [part.format(file=existing, folder=folder) for part in command]
    result = runner.invoke(app, [*args, "-p", str(project)])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert existing.read_text(encoding="utf-8") == "keep me" and list(folder.iterdir()) == []
    assert not [p for p in tmp_path.rglob("*.tmp")]


# -- damaged databases: check reports, never crashes, never calls them intact -------------------------------------


def _damage(project: Path, how: str) -> None:
    import sqlite3

    database = project / ".qualcode" / "project.db"
    if how == "page":
        size = database.stat().st_size
        with database.open("r+b") as handle:
            handle.seek(size // 2)
            handle.write(bytes(range(256)) * 32)
        return
    connection = sqlite3.connect(database)
    with connection:
        if how == "json":
            connection.execute("UPDATE transcripts SET metadata = '{broken' WHERE id = 'lead-01'")
        elif how == "evidence":
            connection.execute("UPDATE suggestions SET evidence = '[{\"a\": 1}]'")
    connection.close()


@pytest.mark.parametrize("how, expected", [("page", "damaged"), ("json", "damaged JSON in table 'transcripts', row lead-01"),
                                           ("evidence", "damaged evidence in table 'suggestions'")])
def test_check_reports_a_damaged_database_that_status_or_export_would_fail_on(tmp_path, how, expected):
    project = _reviewed_project(tmp_path)
    _damage(project, how)
    checked = runner.invoke(app, ["check", "-p", str(project)])
    assert checked.exit_code == 1 and isinstance(checked.exception, SystemExit)
    assert "Problems:" in checked.output and expected in " ".join(checked.output.split()) and "intact" not in checked.output, checked.output
    for command in (["status"], ["export", "--status", "suggested"], ["stats", "--status", "suggested"]):
        result = runner.invoke(app, [*command, "-p", str(project)])
        if result.exit_code:  # a reading command that fails on it says so in one message, which check found first
            assert isinstance(result.exception, SystemExit) and "Error:" in result.output and "afresh" not in result.output, result.output


# -- codebook --check runs every check `code` runs -----------------------------------------------------------------

BAD_PATTERNS = """\
name: x
codes:
  - id: a
    label: A
    patterns:
      - [{_: {not_registered: true}}]
  - id: c
    label: C
    patterns:
      - [{LOWER: x, OP: "?!"}]
  - id: d
    label: D
    patterns:
      - [{LENGTH: {">": "x"}}]
"""


def test_codebook_check_finds_every_pattern_code_would_fail_on_in_one_run(tmp_path):
    project = _project(tmp_path, {"lead-01.txt": TWICE}, codebook=BAD_PATTERNS)
    checked = runner.invoke(app, ["codebook", "--check", "-p", str(project)])
    coded = runner.invoke(app, ["code", "-p", str(project)])
    for result in (checked, coded):
        text = " ".join(result.output.split())
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert "3 problems" in text and "codebook.yaml:6:" in text and "'_.not_registered'" in text
        assert "codebook.yaml:10:" in text and "codebook.yaml:14:" in text


def test_a_deep_chain_of_children_is_refused_where_it_is_written_without_a_recursion_error(tmp_path):
    lines = ["name: deep", "codes:"]
    for i in range(3000):
        lines += [f"  - id: c{i}", f"    label: C{i}", "    keywords: [deadline]"] + ([f"    children: [c{i + 1}]"] if i < 2999 else [])
    project = _project(tmp_path, {"lead-01.txt": TWICE}, codebook="\n".join(lines) + "\n")
    for command in (["codebook", "--check"], ["code"]):
        result = runner.invoke(app, [*command, "-p", str(project)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert "'c100' sits 101 levels deep" in " ".join(result.output.split()), result.output
    from qualcode.codebook import MAX_DEPTH, parse_codebook

    shallow = ["name: ok", "codes:"]
    for i in range(MAX_DEPTH):
        shallow += [f"  - id: c{i}", f"    label: C{i}", "    keywords: [deadline]"] + ([f"    children: [c{i + 1}]"] if i < MAX_DEPTH - 1 else [])
    codebook = parse_codebook("\n".join(shallow) + "\n")
    assert [depth for _code, depth in codebook.walk()] == list(range(MAX_DEPTH)) and len(codebook.descendants("c0")) == MAX_DEPTH - 1


def test_a_qdpx_with_blank_names_and_sources_without_text_imports_and_names_every_drop(tmp_path):
    import io
    import zipfile

    from qualcode.exchange.qdpx_import import import_qdpx

    qde = b'''<?xml version="1.0"?><Project xmlns="urn:QDA-XML:project:1.0" name="x">
<Users><User guid="u1" name="   "/></Users>
<CodeBook><Codes><Code guid="c1" name="   " isCodable="true"/><Code guid="c2" name="Timing" isCodable="true"/></Codes></CodeBook>
<Sources><TextSource guid="s1" name="   "><PlainTextContent>Q: Hi?\nA: Hello there, the deadline.</PlainTextContent>
<PlainTextSelection guid="p1" startPosition="6" endPosition="30" creatingUser="u1"><Coding guid="k1" creatingUser="u1"><CodeRef targetGUID="c2"/></Coding>
</PlainTextSelection></TextSource><TextSource guid="s2" name="empty"/><PictureSource guid="s3" name="photo" path="internal://p.png"/>
<TextSource guid="s4" name="missing" plainTextPath="internal://nothere.txt"/></Sources></Project>'''
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("project.qde", qde)
    (tmp_path / "x.qdpx").write_bytes(buffer.getvalue())
    result = import_qdpx(path=tmp_path / "x.qdpx", project_dir=tmp_path / "new")
    assert result.sources == 1 and result.decisions == 1
    said = " | ".join(result.warnings)
    assert "'empty' has neither text nor a plainTextPath" in said and "'photo' skipped" in said and "sources/nothere.txt is missing" in said


def _open_store(path: str) -> str:
    from qualcode.store import Store

    try:
        Store(path).close()
        return "ok"
    except Exception as exc:  # what a second process met: reported to the test, not raised in the pool
        return f"{type(exc).__name__}: {exc}"


def test_several_processes_opening_a_new_or_old_database_at_once_all_succeed(tmp_path):
    import multiprocessing
    import sqlite3

    from qualcode.store import SCHEMA_VERSION

    old = tmp_path / "old.db"
    old_database(old, 1).close()
    paths = [str(tmp_path / f"new-{n}.db") for n in range(5)] + [str(old)]
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        for path in paths:
            assert set(pool.map(_open_store, [path] * 6)) == {"ok"}, path
            assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert len(list((tmp_path / "backups").iterdir())) >= 1  # the old one was backed up before its migration


# -- the active review order (issue 13: where a decision teaches most) -------------------------------------------


def test_the_active_order_puts_first_what_the_machine_is_least_sure_of(tmp_path):
    from qualcode.project import Project
    from qualcode.review.ordering import uncertainty_scores
    from qualcode.review.session import ReviewFilter, ReviewSession
    from qualcode.suggest.training import train

    answers = ["Nothing much to say.", "The deadline was tight.", "The deadline was tight and who will pay when the funding ends?",
               "Who will pay when the funding ends, honestly."]
    project = _project(tmp_path, {"lead-01.txt": "".join(f"Interviewer: Q{i}?\n\nRespondent: {a}\n\n" for i, a in enumerate(answers))})
    call(code, project)
    (project / "qualcode.yaml").write_text("vectors: none\n", encoding="utf-8")  # rules alone here; tests/test_vectors.py adds the vectors
    with Project.open(project) as opened:
        # Cold codes (no model yet): a segment counts as unsure for each code whose rules fire on it.
        session = ReviewSession(opened, coder="ann", filters=ReviewFilter(order="active", include_unsuggested=True))
        assert [item.text for item in session.items][:1] == [answers[2]] and session.items[-1].text == answers[0]
    # With models: the order follows the models' mean uncertainty across codes.
    more = [f"The deadline number {n} was tight." for n in range(8)] + [f"Meeting number {n} went well." for n in range(8)]
    (project / "transcripts" / "lead-02.txt").write_text("".join(f"Interviewer: Q?\n\nRespondent: {a}\n\n" for a in more), encoding="utf-8")
    (project / "qualcode.yaml").write_text("retrain_after: 0\nlearn_min_examples: 2\n", encoding="utf-8")
    call(code, project)
    with open_store(project) as store:
        for segment in store.codable_segments("lead-02"):
            verdict = "accepted" if "deadline" in segment.text else "rejected"
            store.record([Entry(segment.id, "timescale", verdict), Entry(segment.id, None, "reviewed")], coder="ann")
    assert call(train, project).run is not None
    with Project.open(project) as opened:
        session = ReviewSession(opened, coder="ann", filters=ReviewFilter(order="active", include_unsuggested=True))
        scores = uncertainty_scores(opened, [item.text for item in session.items])
    assert scores == sorted(scores, reverse=True) and all(0.0 <= score <= 1.0 for score in scores) and len(set(scores)) > 1
