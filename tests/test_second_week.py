"""A study's second week (issue 24): settings that take effect, speakers and metadata that are said out loud."""

from __future__ import annotations

import shutil

from conftest import open_store, write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.store import Entry

runner = CliRunner()

CODEBOOK = "codes:\n  - id: timescale\n    label: Timescale\n    keywords: [deadline]\n"
INTERVIEW = """\
Date: 23 October 2026. Duration: 48 minutes. Location: Teams.

Researcher: How was the deadline?

Respondent: The deadline was brutal.

Researcher: And the partners?

Respondent: They were fine, and the deadline did not bother them.
"""


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code in (0, 3), result.output
    return " ".join(result.output.split())


def test_a_changed_interviewer_label_resegments_on_the_next_code_and_keeps_decisions(tmp_path, backend):
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "transcripts" / "lead-01.txt", INTERVIEW)
    first = run("code", "--project", str(tmp_path))
    assert "speaker labels qualcode was not told about: Researcher (2 turns), Date (1 turn)" in first
    assert "add the interviewer's to interviewer_labels" in first
    with open_store(tmp_path) as store:
        rows = store.codable_segments()
        assert [row.speaker for row in rows] == ["Date", "Researcher", "Respondent", "Researcher", "Respondent"]
        answer = next(row for row in rows if row.text == "The deadline was brutal.")
        store.record([Entry(answer.id, "timescale", "accepted")], coder="ann")
    write(tmp_path / "qualcode.yaml", "interviewer_labels: [Interviewer, Researcher, Date]\n")
    second = run("code", "--project", str(tmp_path))
    assert "0 imported, 1 updated, 0 unchanged" in second and "changed since the last run (interviewer_labels)" in second
    assert "not told about" not in second
    with open_store(tmp_path) as store:
        rows = store.codable_segments()
        assert [row.text for row in rows] == ["The deadline was brutal.", "They were fine, and the deadline did not bother them."]
        assert rows[0].id == answer.id and store.coder_states("ann")[answer.id].codes == {"timescale": "accepted"}
    third = run("code", "--project", str(tmp_path))
    assert "0 updated, 1 unchanged" in third
    forced = run("code", "--force", "--project", str(tmp_path))
    assert "1 updated, 0 unchanged" in forced and "changed since the last run" not in forced
    checked = runner.invoke(app, ["check", "--project", str(tmp_path)])
    assert checked.exit_code == 0 and "not told about" not in checked.output


def test_check_names_undeclared_speakers_and_a_coders_folder_without_the_files_is_fine(tmp_path):
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "transcripts" / "lead-01.txt", INTERVIEW)
    run("code", "--project", str(tmp_path))
    checked = runner.invoke(app, ["check", "--project", str(tmp_path)], env={"COLUMNS": "200"})
    out = " ".join(checked.output.split())
    assert checked.exit_code == 0 and "Note: transcripts/lead-01.txt: speaker labels qualcode was not told about: Researcher (2 turns)" in out
    shutil.rmtree(tmp_path / "transcripts")  # a coder's own copy of the project: codebook and settings, no files
    coder = runner.invoke(app, ["check", "--project", str(tmp_path)], env={"COLUMNS": "200"})
    out = " ".join(coder.output.split())
    assert coder.exit_code == 0 and "none of the 1 transcript files is in this folder" in out and "OK:" in out, out


def test_front_matter_and_metadata_csv_disagreeing_is_said_and_the_csv_wins(tmp_path):
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "transcripts" / "lead-01.txt", "---\nrole: lead\nregion: north\n---\n" + INTERVIEW)
    write(tmp_path / "transcripts" / "metadata.csv", "transcript,role,region\nlead-01,partner,North\n")
    out = run("code", "--project", str(tmp_path))
    assert "'role' is 'lead' in its front matter but 'partner' in metadata.csv; metadata.csv wins" in out
    assert "'region'" not in out  # the same value, in another case
    with open_store(tmp_path) as store:
        assert store.transcripts()["lead-01"].metadata["role"] == "partner"
    again = run("code", "--project", str(tmp_path))  # unchanged file: said again, until they agree
    assert "metadata.csv wins" in again


def test_exports_read_well_in_the_second_week(tmp_path, monkeypatch):
    """Issue 24, items 10-13: exact terms in every codebook export, the question before a short answer in quotes.md,
    A4 (or Letter) paper and a printable Excerpts sheet, numbers stored as numbers, each coder's memo on their own rows."""
    import csv

    from openpyxl import load_workbook

    write(tmp_path / "codebook.yaml", "codes:\n  - id: timescale\n    label: Timescale\n    keywords: [deadline]\n    exact: [Pressured]\n")
    write(tmp_path / "transcripts" / "lead-01.txt", "---\nrole: lead\nstaff_count: 12\nsite: '007'\n---\n"
                                                    "Interviewer: Was the deadline tight?\n\nRespondent: Yes. Pressured.\n\n"
                                                    "Interviewer: And then?\n\nRespondent: The deadline moved again and again, and we coped.\n")
    run("code", "--project", str(tmp_path))
    from qualcode.project import Project
    from qualcode.review.session import ReviewSession

    with Project.open(tmp_path) as opened:
        for coder in ("ann", "bob"):
            session = ReviewSession(opened, coder=coder)
            session.note(f"{coder}'s memo")
            session.accept_all()
            session.accept_all()
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    run("export", "--project", str(tmp_path))
    exports = tmp_path / "exports"
    assert "Pressured" in (exports / "codebook.csv").read_text()
    tree = runner.invoke(app, ["codebook", "--terms", "--project", str(tmp_path)], env={"COLUMNS": "120"}).output
    assert "exact: Pressured" in tree
    quotes = (exports / "quotes.md").read_text()
    assert "> *Interviewer: Was the deadline tight?*\n>\n> Yes. Pressured." in quotes  # a short answer comes with its question
    assert "> *Interviewer: And then?*" not in quotes
    with (exports / "codings.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["segment"] == "1"]
    assert {(row["coder"], row["memo"]) for row in rows} == {("ann", "ann: ann's memo"), ("bob", "bob: bob's memo")}
    workbook = load_workbook(exports / "themes.xlsx")
    sheet = workbook["Excerpts"]
    header = [cell.value for cell in sheet[1]]
    assert "start" not in header and "speaker" not in header and header[:5] == ["transcript", "segment", "code", "label", "text"]
    staff = header.index("staff_count")
    assert sheet.cell(row=2, column=staff + 1).value == 12 and sheet.cell(row=2, column=header.index("site") + 1).value == "007"
    assert int(sheet.page_setup.paperSize) == 1 and sheet.page_setup.orientation == "landscape"
    assert sheet.column_dimensions["E"].width <= 62 and sheet.print_title_rows == "$1:$1"
    codebook_sheet = workbook["Codebook"]
    cells = {cell.value: cell for cell in codebook_sheet[1]}
    assert "exact" in cells
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    run("export", "--project", str(tmp_path))
    assert load_workbook(exports / "themes.xlsx")["Summary"].page_setup.paperSize == 9  # A4
    write(tmp_path / "qualcode.yaml", "paper: letter\n")
    run("export", "--project", str(tmp_path))
    assert load_workbook(exports / "themes.xlsx")["Summary"].page_setup.paperSize == 1  # Letter


def test_init_leaves_the_groups_to_the_study(tmp_path):
    assert runner.invoke(app, ["init", str(tmp_path / "study")]).exit_code == 0
    settings = (tmp_path / "study" / "qualcode.yaml").read_text()
    assert "\ngroups:" not in settings and "# groups:" in settings and "respondent_labels:" in settings
