"""A researcher's first day, as the README tells it: the lines of its "Your own study" block are
run by bash, in order, from a folder standing for a fresh clone (its .venv is the one running
these tests). Only what a person would do by hand is supplied: the interview files in
~/interviews, an $EDITOR that writes the researcher's metadata.csv and codebook.yaml, and the
keys typed in review (a memo, then an accept). Then every export is read for the memo and the
codings."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

CODEBOOK = """\
name: Partnership work
codes:
  - id: pressures
    label: Pressures
    description: What made the partnership work hard.
    children:
      - id: time
        label: Time
        description: Too little time.
        keywords: [deadline, week, rush]
        phrases: [short window]
      - id: money
        label: Money
        keywords: [funding, budget, money]
  - id: people
    label: People
    description: Staff, managers and trust between them.
    keywords: [staff, manager, trust]
    exact: [managers]
  - id: other
    label: Other
    manual: true
"""

METADATA = """\
transcript,role,site
lead-01,manager,north
lead-02,manager,south
partner-01,hr,north
partner-02,hr,south
stakeholder-01,union,north
stakeholder-02,union,south
"""

MEMO = "Hedges: says 'not proud of it'"


def readme_block() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    marker = readme.index("<!-- first-day")
    start = readme.index("```sh\n", marker) + len("```sh\n")
    return readme[start : readme.index("```", start)]


def test_the_readme_first_day_from_init_to_every_export(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the tests are not running from a virtual environment (make test makes one)")
    clone = tmp_path / "qualcode"
    clone.mkdir()
    (clone / ".venv").symlink_to(venv)
    home = tmp_path / "home"
    interviews = home / "interviews"
    interviews.mkdir(parents=True)
    for path in (REPO / "transcripts").iterdir():
        if path.name != "metadata.csv":
            shutil.copy(path, interviews / path.name)
    assert sorted({path.suffix for path in interviews.iterdir()}) == [".docx", ".md", ".srt", ".txt", ".vtt"]
    edits = tmp_path / "edits"
    edits.mkdir()
    (edits / "codebook.yaml").write_text(CODEBOOK, encoding="utf-8")
    (edits / "metadata.csv").write_text(METADATA, encoding="utf-8")
    editor = tmp_path / "editor"
    editor.write_text(f'#!/bin/sh\ncp "{edits}/$(basename "$1")" "$1"\n', encoding="utf-8")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)

    block = readme_block()
    assert "qualcode init" in block and "qualcode review" in block and "qualcode export" in block
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("QUALCODE_", "VIRTUAL_ENV"))}
    environment.update(HOME=str(home), EDITOR=str(editor), PATH="/usr/bin:/bin", COLUMNS="100", NO_COLOR="1")
    keys = f"n{MEMO}\naq"  # a memo on the first segment, accept its suggestions, quit
    done = subprocess.run(["bash", "-e", "-c", block], cwd=clone, env=environment, input=keys, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^qualcode \d+\.\d+", out, re.M)
    assert "Next, in ../my-study:" in out
    assert "codebook.yaml: OK, 5 codes" in out
    assert f"note: {MEMO}" in out

    study = tmp_path / "my-study"
    exports = study / "exports"
    with (exports / "codings.csv").open(encoding="utf-8") as handle:
        codings = list(csv.DictReader(handle))
    accepted = [row for row in codings if row["status"] == "accepted"]
    assert accepted and {row["coder"] for row in accepted} == {"ann"}
    first = accepted[0]
    assert first["memo"] == f"ann: {MEMO}" and first["role"] in ("manager", "hr", "union")
    assert list(codings[0])[:11] == ["transcript", "segment", "speaker", "start", "end", "text", "code", "status", "confidence", "coder", "memo"]
    assert list(codings[0])[11:13] == ["role", "site"]  # metadata.csv's column order, then front matter's other keys
    with (exports / "excerpts.csv").open(encoding="utf-8") as handle:
        excerpt_rows = list(csv.DictReader(handle))
    assert {(row["transcript"], row["code"], row["memo"]) for row in excerpt_rows} == {
        (row["transcript"], row["code"], row["memo"]) for row in accepted}

    from openpyxl import load_workbook

    workbook = load_workbook(exports / "themes.xlsx")
    sheet = workbook["Excerpts"]
    header = [cell.value for cell in sheet[1]]
    rows = [dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert [row["memo"] for row in rows] == [row["memo"] for row in excerpt_rows] and rows[0]["memo"] == f"ann: {MEMO}"
    summary = [row for row in workbook["Summary"].iter_rows(values_only=True)]
    assert summary[0][2:5] == ("hr: respondents", "hr: %", "hr: segments")  # groups not listed in qualcode.yaml: alphabetical

    quotes = (exports / "quotes.md").read_text(encoding="utf-8")
    assert MEMO in quotes and f"`{first['code']}`" in quotes

    with zipfile.ZipFile(exports / "project.qdpx") as archive:
        qde = archive.read("project.qde").decode("utf-8")
    assert f"<PlainTextContent>{MEMO.replace(chr(39), '&#x27;')}</PlainTextContent>" in qde or MEMO in qde
    assert "<NoteRef " in qde and qde.count('name="ann"') == 1
    assert qde.count("<Coding ") == len(accepted)
    xml_memo = re.search(r"<Note [^>]*>\s*<PlainTextContent>(.*?)</PlainTextContent>", qde, re.S)
    assert xml_memo is not None and xml_memo.group(1).replace("&apos;", "'").replace("&#x27;", "'") == MEMO
    assert io.StringIO(out).read().count("Wrote ") >= 10
