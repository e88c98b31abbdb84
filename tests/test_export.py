from __future__ import annotations

import csv
import os

import pytest
from conftest import call, open_store

from qualcode.exchange.export import codings_rows, export, write_atomic
from qualcode.run.coding import code


def test_codings_reflect_each_coders_latest_decision(small_project):
    call(code, small_project)
    with open_store(small_project) as store:
        first, second = store.codable_segments("lead-01")
        store.add_decision(first.id, "timescale", "rejected", coder="ann")
        store.add_decision(first.id, "timescale", "accepted", coder="ann")
        store.add_decision(first.id, "timescale", "rejected", coder="bob")
        store.add_decision(second.id, "other", "added", coder="ann")
        header, produced = codings_rows(store)
        rows = list(produced)
        assert header[-2:] == ["role", "sector"]
        table = [(r[0], r[1], r[6], r[7], r[9]) for r in rows]
        assert table == [
            ("lead-01", 1, "timescale", "accepted", "ann"),
            ("lead-01", 1, "timescale", "rejected", "bob"),
            ("lead-01", 2, "other", "added", "ann"),
            ("lead-01", 2, "sustainability", "suggested", ""),
        ]
        assert rows[2][8] == ""  # an added code has no machine confidence
        _header, bob_rows = codings_rows(store, coder="bob")
        assert [(r[6], r[7]) for r in bob_rows] == [("timescale", "rejected"), ("sustainability", "suggested")]


def test_export_offsets_slice_the_stored_text(sample_project):
    call(code, sample_project)
    result = call(export, sample_project)
    with result.files[0].open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result.rows > 30
    with open_store(sample_project) as store:
        for row in rows:
            assert store.transcript_text(row["transcript"])[int(row["start"]) : int(row["end"])] == row["text"]
    assert {row["role"] for row in rows} == {"lead", "partner", "stakeholder"}


def test_write_atomic_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "codings.csv"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["codings.csv"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "codings.csv"
    write_atomic(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    from qualcode.errors import OutputError

    with pytest.raises(OutputError, match="cannot write"):  # one located message, not a traceback
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["codings.csv"]


def test_themes_xlsx_sheets_headers_values_and_formatting(decided_project):
    from openpyxl import load_workbook

    result = call(export, decided_project, formats="xlsx", by=["sector", "role,sector"])
    workbook = load_workbook(result.files[0])
    assert workbook.sheetnames == ["Summary", "By sector", "By role x sector", "Co-occurrence", "Respondents", "Excerpts", "Codebook"]
    summary = workbook["Summary"]
    header = [cell.value for cell in summary[1]]
    assert header[:5] == ["code", "label", "lead: respondents", "lead: %", "lead: segments"]
    rows = {row[0]: row for row in summary.iter_rows(min_row=2, values_only=True)}
    assert rows["timescale"][2:5] == (1, 0.5, 2)  # a percentage as a fraction, shown as one
    assert summary.cell(row=4, column=4).number_format == "0.0%"
    assert all(isinstance(value, (int, float)) for value in rows["timescale"][2:])  # numbers stored as numbers
    assert rows["challenges"][header.index("All: respondents")] == 3
    assert summary.freeze_panes == "B2" and summary["A1"].font.bold
    assert summary.column_dimensions["B"].width >= len("respondents (N)")
    heat = [(str(rule.sqref), rule.rules[0].colorScale.cfvo) for rule in summary.conditional_formatting]
    assert len(heat) == 1  # the percentages of every group on one scale, counts of unequal groups left plain
    ranges, stops = heat[0]
    assert ranges.split() == ["D3:D6", "G3:G6", "J3:J6", "M3:M6"]  # code rows only, N row left plain
    assert [(stop.type, float(stop.val)) for stop in stops] == [("num", 0.0), ("num", 1.0)]
    assert summary.cell(row=4, column=2).alignment.indent == 2  # timescale under challenges
    assert summary.page_setup.orientation == "landscape" and summary.page_setup.fitToWidth == 1
    assert summary.sheet_properties.pageSetUpPr.fitToPage  # without it, fitToWidth is ignored and a sheet prints over many pages
    assert summary.print_title_rows == "$1:$1"
    assert [cell.value for cell in workbook["Codebook"][1]][:7] == ["id", "label", "parent", "level", "definition", "include", "exclude"]
    excerpts = list(workbook["Excerpts"].iter_rows(min_row=2, values_only=True))
    assert len(excerpts) == 5 and workbook["Excerpts"].freeze_panes == "A2"
    respondents = workbook["Respondents"]
    assert [cell.value for cell in respondents[1]][:3] == ["transcript", "role", "sector"]
    assert "segments coded" in respondents["A1"].comment.text
    assert list(respondents.conditional_formatting)


def test_csv_tables_are_utf8_one_table_per_file(decided_project):
    result = call(export, decided_project, formats="csv", by=["sector"])
    names = [path.name for path in result.files]
    assert names == ["codings.csv", "summary.csv", "by_sector.csv", "co_occurrence.csv", "respondents.csv", "excerpts.csv", "codebook.csv",
                     "codebook-taguette.csv"]
    # Taguette imports a codebook CSV with exactly one of tag/name/path, its hierarchy in dotted paths.
    with (decided_project / "exports" / "codebook-taguette.csv").open(encoding="utf-8") as handle:
        taguette = list(csv.DictReader(handle))
    assert [row["tag"] for row in taguette] == ["Challenges", "Challenges.Timescale", "Challenges.Sustainability", "Other"]
    assert list(taguette[0]) == ["tag", "description"]
    with (decided_project / "exports" / "summary.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["code", "label", "lead: respondents"]
    assert rows[1][:5] == ["N", "respondents (N)", "2", "100.0", "5"]
    assert rows[3][:5] == ["timescale", "Timescale", "1", "50.0", "2"]


def test_quotes_markdown_groups_excerpts_by_respondent_type(decided_project):
    call(export, decided_project, formats="md")
    text = (decided_project / "exports" / "quotes.md").read_text(encoding="utf-8")
    assert text.startswith("# Quotes: Test codebook\n")
    timescale = text[text.index("### Timescale (`timescale`)") : text.index("### Sustainability")]
    assert "*Definition:* Time pressure." in timescale
    assert "**lead** (1 respondent, 2 excerpts)" in timescale
    assert "> First answer about things.\n> — lead-01, segment 1" in timescale
    assert "**partner** (1 respondent, 1 excerpt)" in timescale
    assert "## Other (`other`)\n\nNo coded excerpts." in text


def test_export_refuses_unknown_breakdown_attribute(decided_project):
    from qualcode.errors import AnalysisError

    with pytest.raises(AnalysisError, match="no transcript has the attribute 'region'. Fix: use one of the attributes that exist: role, sector"):
        call(export, decided_project, formats="xlsx", by=["region"])


def test_export_overwrites_atomically(decided_project):
    first = call(export, decided_project, formats="xlsx").files[0].read_bytes()
    call(export, decided_project, formats="xlsx")
    assert sorted(p.name for p in (decided_project / "exports").iterdir()) == ["themes.xlsx"]
    assert first[:2] == b"PK"
