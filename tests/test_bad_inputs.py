"""The corpus of bad inputs in tests/data/bad/: each gives one line naming the file, and the batch goes on.

The corpus is written by scripts/make_bad_inputs.py; the 50 MB transcript is not committed
but written by this test into its temporary project.
"""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO, open_store
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.codebook import load_codebook
from qualcode.errors import CodebookError
from qualcode.suggest.pipeline import build_pipeline

BAD = REPO / "tests" / "data" / "bad"
runner = CliRunner()

SKIPPED = {
    "truncated.docx": "not a readable .docx (it is not a Word package",
    "zip-not-docx.docx": "not a readable .docx (damaged Word package",
    "pdf-renamed.docx": "not a readable .docx (it is not a Word package",
    "binary-named.txt": "binary file, not text",
    "nul-bytes.srt": "binary file, not text",
    "invalid-utf8-random.md": "binary file, not text",
    "empty.txt": "empty file",
    "whitespace-only.md": "empty file",
    "bom-only.txt": "no transcript text found",
    "no-header.vtt": "malformed WebVTT",
    "no-cues.vtt": "no transcript text found",
    "bad-timestamps.srt": "malformed SRT near line 1",
    "empty-cues.srt": "no transcript text found",
    "scan.pdf": "unsupported format '.pdf'",
    "duplicate-id.txt": "same transcript id 'duplicate-id' as transcripts/duplicate-id.md",
    "huge-50mb.txt": "50 MB, larger than max_transcript_mb (20 MB)",
}
WARNED = {
    "utf16-no-bom.txt": "UTF-16 without a byte-order mark; read as UTF-16-LE",
    "cp1252-quotes.txt": "not UTF-8; read as Windows-1252",
    "front-matter-list.md": "front matter is not a mapping",
    "front-matter-unclosed.txt": "front matter is not closed by a '---' line",
    "front-matter-bad-yaml.txt": "front matter is not valid YAML",
    "front-matter-nested.md": "front matter key 'extra' is not a single value",
    "only-interviewer.txt": "no respondent turns found",
    "control-chars.txt": "control characters replaced by spaces",
    "metadata.csv": "duplicate id 'cp1252-quotes' (first at line 2)",
    "utf16-bom-truncated.txt": "invalid byte sequences for UTF-16 shown as",
    "utf8-bom-then-garbage.txt": "3 invalid byte sequences for UTF-8 shown as",
    "lone-surrogate.txt": "not UTF-8; read as Windows-1252",
}
# table-only.docx: Word tables are read (a 'Speaker | words' row is a turn), so its one cell is its text.
# unbroken-2mb.txt: 2 MB without a space or a sentence end is cut into segments spaCy takes (at most 20,000 characters).
IMPORTED_QUIETLY = {"unbroken-2mb.txt", "table-only.docx", "utf16-with-bom.md", "overlapping-cues.vtt", "long-line.txt", "mixed-newlines.txt", "speakers-everywhere.txt", "duplicate-id.md"}


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory):
    project = tmp_path_factory.mktemp("bad")
    shutil.copy(REPO / "codebook.yaml", project / "codebook.yaml")
    shutil.copytree(BAD / "transcripts", project / "transcripts")
    shutil.copy(REPO / "transcripts" / "lead-01.txt", project / "transcripts" / "good-lead.txt")
    with (project / "transcripts" / "huge-50mb.txt").open("wb") as handle:
        line = b"Respondent: the deadline was tight and we rushed everything again and again.\n"
        handle.write(line * (50 * 1024 * 1024 // len(line) + 1))
    result = runner.invoke(app, ["code", "--project", str(project)], env={"NO_COLOR": "1", "COLUMNS": "400"})
    return project, result


def test_corpus_has_at_least_30_named_bad_inputs():
    names = {path.name for path in (BAD / "transcripts").iterdir()} | {path.name for path in (BAD / "codebooks").iterdir()}
    assert len(names) + 1 >= 30  # + the 50 MB transcript written at test time
    assert set(SKIPPED) - {"huge-50mb.txt"} | set(WARNED) | IMPORTED_QUIETLY == {path.name for path in (BAD / "transcripts").iterdir()}


def test_every_bad_transcript_is_named_on_one_line_and_the_batch_goes_on(bad_batch):
    project, result = bad_batch
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    for name, reason in SKIPPED.items():
        [line] = [line for line in lines if line.startswith(f"Skipped transcripts/{name}:")]
        assert reason in line, line
    for name, warning in WARNED.items():
        assert any(line.startswith(f"Warning: transcripts/{name}") and warning in line for line in lines), name
    with open_store(project) as store:
        imported = set(store.transcripts())
        assert store.problems() == []
    assert "good-lead" in imported
    expected = {name.rsplit(".", 1)[0] for name in IMPORTED_QUIETLY | set(WARNED)} - {"metadata"}
    assert expected <= imported
    assert not imported & {name.rsplit(".", 1)[0] for name in SKIPPED if name != "duplicate-id.txt"}


def test_metadata_csv_without_an_id_column_is_a_warning(tmp_path):
    shutil.copy(REPO / "codebook.yaml", tmp_path / "codebook.yaml")
    (tmp_path / "transcripts").mkdir()
    shutil.copy(REPO / "transcripts" / "lead-01.txt", tmp_path / "transcripts" / "lead-01.txt")
    shutil.copy(BAD / "metadata-missing-id-column.csv", tmp_path / "transcripts" / "metadata.csv")
    result = runner.invoke(app, ["code", "--project", str(tmp_path)], env={"NO_COLOR": "1", "COLUMNS": "400"})
    assert result.exit_code == 0
    assert "Warning: transcripts/metadata.csv:1: the first column has no name; metadata ignored." in result.output


CODEBOOK_ERRORS = {
    "alias-chain-10000.yaml": "unknown key 'extra_anchors'",
    "billion-laughs.yaml": "unknown key 'a'",
    "recursive-alias.yaml": "duplicate id 'a'",
    "tabs.yaml": "YAML syntax error",
    "not-utf8.yaml": "not UTF-8",
    "control-char.yaml": "character U+0007 is not allowed in YAML",
    "cycle.yaml": "child cycle",
    "duplicate-id.yaml": "duplicate id 'a'",
    "unknown-key.yaml": "unknown key 'keyword'",
    "empty.yaml": "the codebook is empty",
    "nothing-to-match.yaml": "has nothing to match",
    "bad-pattern.yaml": "invalid token pattern for 'a'",
    "not-a-mapping.yaml": "expected a mapping",
    "malformed-id.yaml": "malformed id 'Time Scale'",
    "unregistered-extension.yaml": "no token attribute '_.sentiment'",
    "invalid-regex.yaml": "invalid REGEX '['",
    "too-deep.yaml": "'c100' sits 101 levels deep",
}


@pytest.mark.parametrize("name, message", sorted(CODEBOOK_ERRORS.items()))
def test_bad_codebooks_give_one_line_errors(name, message):
    path = BAD / "codebooks" / name
    with pytest.raises(CodebookError) as raised:
        build_pipeline(load_codebook(path))
    text = str(raised.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_alias_chain_without_unknown_keys_is_refused_too(tmp_path):
    depth = 10_000
    chain = "\n".join(f"      - &a{i} [*a{i - 1}]" if i else "      - &a0 [x]" for i in range(depth))
    path = tmp_path / "codebook.yaml"
    path.write_text(f"codes:\n  - id: a\n    examples:\n{chain}\n    keywords: *a{depth - 1}\n")
    with pytest.raises(CodebookError) as raised:
        load_codebook(path)
    assert str(raised.value).startswith(f"{path}:")


def test_a_huge_keyword_is_accepted():
    codebook = load_codebook(BAD / "codebooks" / "huge-keyword.yaml")
    assert len(codebook["a"].keywords[0]) == 100_000
