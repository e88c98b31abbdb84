from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, open_store, write
from typer.testing import CliRunner

from qualcode.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "100"})


def registered_commands() -> list[str]:
    """Every command the app registers, read from the app itself (a new command cannot be forgotten here)."""
    names = [info.name or (info.callback.__name__ if info.callback else "") for info in app.registered_commands]
    names += [f"{group.name} {info.name}" for group in app.registered_groups for info in group.typer_instance.registered_commands]
    return names


def test_the_app_has_the_commands_the_readme_documents():
    assert len(registered_commands()) >= 12


@pytest.mark.parametrize("command", [[], *[name.split() for name in registered_commands()]])
def test_every_help_shows_an_example(command):
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example: qualcode" in result.output
    if command and command[0] not in ("import-qdpx", "init"):
        assert "--project" in result.output


@pytest.mark.parametrize("command", registered_commands())
def test_every_command_is_in_the_readme(command):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"qualcode {command}" in readme, f"'qualcode {command}' is not documented in README.md"


def test_every_setting_is_in_the_readme_settings_block():
    from qualcode.settings import _SETTING_TYPES

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Settings (`qualcode.yaml`, optional)", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    keys = {line.split(":", 1)[0] for line in block.splitlines() if line and not line.startswith(" ")}
    assert set(_SETTING_TYPES) - keys == set(), "settings missing from README's qualcode.yaml block"


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0 and result.output == f"qualcode {version('qualcode')}\n"


@pytest.mark.parametrize("command", [["review", "--coder", "ann"], ["status"], ["stats"], ["agreement", "coder:a", "machine"],
                                     ["evaluate", "gold.csv"], ["train"], ["check"], ["backup"]])
def test_reading_commands_never_create_a_database(small_project, command):
    result = run(*command, "--project", str(small_project))
    assert result.exit_code == 1 and "no project database yet. Fix: run 'qualcode code' first" in " ".join(result.output.split())
    assert not (small_project / ".qualcode").exists()


def test_code_prints_summary_table(small_project):
    result = run("code", "--project", str(small_project))
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert lines[0] == "Transcripts: 2 imported, 0 updated, 0 unchanged, 0 skipped. 3 respondent segments in the project."
    table = "\n".join(lines)
    assert "│ N (respondents)  │          │    1 │       1 │   2 │" in table
    assert "│ challenges       │        2 │    1 │       0 │   1 │" in table
    assert "│   timescale      │        1 │    1 │       0 │   1 │" in table
    assert "│   sustainability │        1 │    1 │       0 │   1 │" in table
    assert "│ other            │        0 │    0 │       0 │   0 │" in table

    again = run("code", "--project", str(small_project))
    assert again.output.splitlines()[0] == "Transcripts: 0 imported, 0 updated, 2 unchanged, 0 skipped. 3 respondent segments in the project."


def test_code_exits_3_when_files_were_skipped_and_names_them(small_project):
    (small_project / "transcripts" / "broken.docx").write_bytes(b"not a zip")
    result = run("code", "--project", str(small_project))
    assert result.exit_code == 3
    assert "Skipped transcripts/broken.docx: not a readable .docx (it is not a Word package; perhaps an old .doc or another file renamed). Fix: open it in Word or LibreOffice and save it again as .docx" in result.output
    assert "2 imported" in result.output
    with open_store(small_project) as store:
        assert sorted(store.transcripts()) == ["lead-01", "partner-01"]


def test_code_with_explicit_paths(small_project):
    result = run("code", "--project", str(small_project), "transcripts/partner-01.txt")
    assert result.exit_code == 0
    with open_store(small_project) as store:
        assert list(store.transcripts()) == ["partner-01"]
        assert store.transcripts()["partner-01"].metadata == {"role": "partner"}


def test_bad_codebook_is_one_message_and_exit_1(small_project):
    write(small_project / "codebook.yaml", "codes:\n  - id: a\n    keyword: [x]\n")
    for command in ("code", "codebook"):
        result = run(command, "--project", str(small_project))
        assert result.exit_code == 1
        assert result.output.strip() == (
            f"Error: {small_project / 'codebook.yaml'}:3: codes[0].keyword: unknown key 'keyword'. Fix: did you mean 'keywords'?"
        )
        assert "Traceback" not in result.output


def test_missing_project_folder(tmp_path):
    result = run("code", "--project", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path / 'nowhere'}: no such project folder. Fix: pass --project")


def test_codebook_tree_and_check():
    result = run("codebook", "--project", str(REPO))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "PSP development challenges (7 codes)"
    assert any(line.startswith("├── challenges  Challenges") for line in lines)
    assert any("│   ├── timescale  Timescale" in line for line in lines)
    assert any(line.startswith("└── other  Other notable (manual)") for line in lines)
    check = run("codebook", "--check", "--project", str(REPO))
    assert check.output == "codebook.yaml: OK, 7 codes (6 without children)\n"


def test_codebook_terms_lists_keywords():
    result = run("codebook", "--terms", "--project", str(REPO))
    assert "keywords: deadline, timescale" in result.output


def test_export_csv_writes_codings(small_project):
    assert run("code", "--project", str(small_project)).exit_code == 0
    result = run("export", "--format", "csv", "--project", str(small_project))
    assert result.exit_code == 0
    path = small_project / "exports" / "codings.csv"
    assert "Warning: No confirmed codings yet: the tables count nothing. Review first, or export with --status suggested." in " ".join(result.output.split())
    assert f"Wrote {path} (2 rows)" in result.output.replace("\n", "")
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["transcript", "segment", "speaker", "start", "end", "text", "code", "status", "confidence", "coder", "memo", "role", "sector"]
    assert [(r["transcript"], r["segment"], r["code"], r["status"], r["coder"], r["role"]) for r in rows] == [
        ("lead-01", "1", "timescale", "suggested", "", "lead"),
        ("lead-01", "2", "sustainability", "suggested", "", "lead"),
    ]


def test_export_unknown_format_and_before_coding(small_project):
    result = run("export", "--format", "pdf", "--project", str(small_project))
    assert result.exit_code == 1 and "unknown export format 'pdf'. Fix: use one or more of: xlsx, csv, md, qdpx, or all" in result.output
    result = run("export", "--project", str(small_project))
    assert result.exit_code == 1 and "nothing to export yet. Fix: run 'qualcode code' first" in result.output


def test_python_dash_m_runs_the_cli():
    completed = subprocess.run([sys.executable, "-m", "qualcode", "--help"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and "Usage" in completed.stdout


def test_review_with_piped_keys_prints_screens_and_a_closing_line(review_project):
    result = runner.invoke(app, ["review", "--project", str(review_project), "--coder", "ann", "--plain"], input="a\nx\nq", env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "segment 1/2 of lead-01" in result.output and "Respondent: The [deadline] was brutal" in result.output
    assert result.output.splitlines()[-1] == "Review quit: 2 decisions this session as ann; reviewed 2/3. Everything is saved."
    with open_store(review_project) as store:
        assert [(key[1], row.verdict) for key, row in store.latest_decisions("ann").items()] == [
            ("timescale", "accepted"),
            ("sustainability", "rejected"),
        ]


def test_review_turns_active_by_itself_once_a_fifth_is_reviewed_and_says_so(review_project):
    first = runner.invoke(app, ["review", "--project", str(review_project), "--coder", "ann", "--plain"], input="a\nq", env={"NO_COLOR": "1"})
    assert first.exit_code == 0 and "Order:" not in first.output  # transcript order, as before: nothing to say
    again = runner.invoke(app, ["review", "--project", str(review_project), "--coder", "bob", "--plain"], input="q", env={"NO_COLOR": "1"})
    assert again.exit_code == 0
    assert ("Order: active, the segments the models are least sure of first (1 of the project's 4 segments reviewed; from 20% "
            "on, this order teaches them most). --order transcript reads in transcript order.") in " ".join(again.output.split())
    asked = runner.invoke(app, ["review", "--project", str(review_project), "--coder", "bob", "--plain", "--order", "transcript"],
                          input="q", env={"NO_COLOR": "1"})
    assert asked.exit_code == 0 and "Order:" not in asked.output and "segment 1/2 of lead-01" in asked.output


def test_review_accept_above_and_status(review_project):
    result = run("review", "--project", str(review_project), "--coder", "ann", "--accept-above", "0.7")
    assert result.output == "Accepted 2 suggestions at or above 0.7 as ann (batch).\n"
    status = run("status", "--project", str(review_project))
    assert status.exit_code == 0
    assert "│ lead-01    │ lead    │        2 │         2 │ 0/2 │" in status.output
    assert "│   sustainability │         2 │ 2/0/0 │" in status.output


def test_review_errors_are_one_line(review_project):
    result = run("review", "--project", str(review_project), "--code", "nope")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no code 'nope' in the codebook. Fix: see 'qualcode codebook' for the ids"
    result = run("review", "--project", str(review_project), "--order", "random")
    assert result.output.strip() == "Error: unknown order 'random'. Fix: use one of: transcript, uncertain, active"
    result = run("review", "--project", str(review_project), "--role", "funder")
    assert result.output.strip() == "Nothing to review with these filters. (--all includes segments without suggestions)"


def test_status_before_coding(small_project):
    result = run("status", "--project", str(small_project))
    assert result.exit_code == 1 and "no project database yet. Fix: run 'qualcode code' first" in result.output


def test_stats_by_role_and_crossed(decided_project):
    result = run("stats", "--project", str(decided_project))
    assert result.exit_code == 0
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert lines[0] == "Respondents raising each code, by role (confirmed codings)"
    table = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert table == [
        ["", "N=2", "N=1", "N=1", "N=4"],
        ["challenges", "2 (100%)", "1 (100%)", "0 (0%)", "3 (75%)"],
        ["timescale", "1 (50%)", "1 (100%)", "0 (0%)", "2 (50%)"],
        ["sustainability", "2 (100%)", "0 (0%)", "0 (0%)", "2 (50%)"],
        ["other", "0 (0%)", "0 (0%)", "0 (0%)", "0 (0%)"],
    ]
    crossed = run("stats", "--by", "role,sector", "--status", "all", "--project", str(decided_project))
    assert "by role x sector (all codings)" in crossed.output


def test_wide_stats_fold_into_tables_that_fit_80_columns_and_unknown_attributes_are_refused(decided_project):
    narrow = runner.invoke(app, ["stats", "--by", "role,sector", "--segments", "--project", str(decided_project)],
                           env={"NO_COLOR": "1", "COLUMNS": "80"})
    assert narrow.exit_code == 0
    lines = narrow.output.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in narrow.output
    assert "(1 of 2)" in narrow.output and "(2 of 2)" in narrow.output
    words = " ".join(narrow.output.replace("│", " ").replace("┃", " ").split())
    for group in ("lead / public", "lead / third", "partner / third", "stakeholder / public", "All"):
        assert all(word in words for word in group.split())
    unknown = run("stats", "--by", "region", "--project", str(decided_project))
    assert unknown.exit_code == 1
    assert "no transcript has the attribute 'region'. Fix: use one of the attributes that exist: role, sector" in " ".join(unknown.output.split())


def test_export_all_formats_and_import_qdpx_cli(decided_project, tmp_path):
    result = run("export", "--project", str(decided_project))
    assert result.exit_code == 0
    written = [line.split()[1] for line in result.output.splitlines() if line.startswith("Wrote ")]
    assert [Path(p).name for p in written] == [
        "codings.csv", "summary.csv", "co_occurrence.csv", "respondents.csv", "excerpts.csv", "codebook.csv", "codebook-taguette.csv",
        "themes.xlsx", "quotes.md", "project.qdpx", "codebook.qdc",
    ]
    imported = run("import-qdpx", str(decided_project / "exports" / "project.qdpx"), "--project", str(tmp_path / "copy"))
    assert imported.exit_code == 0
    assert "5 coded selections (5 placed on segments, 0 not placed), 6 decisions by ann, bob." in " ".join(imported.output.split())
    bad = tmp_path / "bad.qdpx"
    bad.write_text("not a zip")
    failed = run("import-qdpx", str(bad), "--project", str(tmp_path / "other"))
    assert failed.exit_code == 1 and failed.output.startswith(f"Error: {bad}: not a REFI-QDA archive")


def test_agreement_cli_table_csv_and_disagreements(decided_project, tmp_path):
    result = run("agreement", "coder:ann", "coder:bob", "--project", str(decided_project))
    assert result.exit_code == 0, result.output
    assert "Agreement: coder:ann vs coder:bob" in result.output
    assert "1 segments in common. P/R/F1: coder:bob scored against coder:ann." in " ".join(result.output.split())
    out = tmp_path / "agreement.csv"
    written = run("agreement", "coder:ann", "coder:bob", "--format", "csv", "--output", str(out), "--project", str(decided_project))
    assert written.exit_code == 0
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["code", "units", "both", "only_a", "only_b", "neither", "kappa", "percent_agreement", "precision", "recall", "f1", "alpha"]
    assert rows[1][:6] == ["timescale", "1", "0", "0", "1", "0"]
    listed = run("agreement", "coder:ann", "coder:bob", "--disagreements", "--project", str(decided_project))
    assert "partner-01 segment 1 · timescale · coder:ann=no, coder:bob=yes" in listed.output
    assert "Partner speaking." in listed.output
    bad = run("agreement", "coder:ann", "--project", str(decided_project))
    assert bad.exit_code == 1 and "agreement needs two or more sources" in bad.output


def test_evaluate_and_train_cli(review_project, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("transcript,text,code\nlead-01,The deadline was brutal,timescale\n", encoding="utf-8")
    result = run("evaluate", str(gold), "--project", str(review_project))
    assert result.exit_code == 0, result.output
    assert "Suggestions against gold:gold.csv" in result.output
    # The gold file names only lead-01, so only its segments count.
    assert "sustainability false positive: lead-01 segment 2" in result.output
    assert "fired: rules 0.76: when the funding end, who will pay" in result.output
    assert "partner-01" not in result.output
    trained = run("train", "--project", str(review_project))
    assert trained.exit_code == 0
    assert "No code has enough examples yet: suggestions stay rule-based." in trained.output
    assert "Models from 0 reviewed segments" in trained.output
