from __future__ import annotations

import pytest

from qualcode.analysis.counts import codings, cooccurrence, excerpts, respondent_matrix, theme_frequency
from qualcode.errors import AnalysisError
from qualcode.project import Project


def tables(project, **kwargs):
    opened = Project.open(project)
    return opened.store, opened.codebook, codings(opened.store, opened.codebook, **kwargs)


def cells(table, code, group):
    [row] = [row for row in table.rows if row[0] == code]
    record = dict(zip(table.columns, row))
    return (record[f"{group}: respondents"], record[f"{group}: %"], record[f"{group}: segments"])


def test_frequency_by_role_matches_hand_counts(decided_project):
    store, codebook, frame = tables(decided_project)
    table = theme_frequency(store, codebook, frame)
    assert table.attrs["groups"] == ["lead", "partner", "stakeholder"]
    assert table.column("code") == ["N", "challenges", "timescale", "sustainability", "other"]
    # N: respondents per group and their respondent segments (3 + 2, 2, 1).
    assert cells(table, "N", "lead") == (2, 100.0, 5)
    assert cells(table, "N", "partner") == (1, 100.0, 2)
    assert cells(table, "N", "All") == (4, 100.0, 8)
    # timescale: lead-01 raised it in two segments (one respondent); partner-01 via bob.
    assert cells(table, "timescale", "lead") == (1, 50.0, 2)
    assert cells(table, "timescale", "partner") == (1, 100.0, 1)
    assert cells(table, "timescale", "stakeholder") == (0, 0.0, 0)
    assert cells(table, "timescale", "All") == (2, 50.0, 3)
    assert cells(table, "sustainability", "lead") == (2, 100.0, 2)
    # The parent counts lead-01's second segment once, though two children apply.
    assert cells(table, "challenges", "lead") == (2, 100.0, 3)
    assert cells(table, "challenges", "All") == (3, 75.0, 4)
    assert cells(table, "other", "All") == (0, 0.0, 0)


def test_one_coder_only(decided_project):
    store, codebook, frame = tables(decided_project, coder="ann")
    table = theme_frequency(store, codebook, frame)
    assert cells(table, "timescale", "partner") == (0, 0.0, 0)  # ann rejected it; bob's accept is not hers
    assert cells(table, "timescale", "lead") == (1, 50.0, 2)


def test_crossed_attributes(decided_project):
    store, codebook, frame = tables(decided_project)
    table = theme_frequency(store, codebook, frame, by=["role", "sector"])
    assert table.attrs["groups"] == ["lead / public sector", "lead / third sector", "partner / third sector", "stakeholder / public sector"]
    assert cells(table, "sustainability", "lead / public sector") == (1, 100.0, 1)
    assert cells(table, "sustainability", "lead / third sector") == (1, 100.0, 1)
    by_sector = theme_frequency(store, codebook, frame, by=["sector"])
    assert cells(by_sector, "timescale", "third sector") == (2, 100.0, 3)


def test_statuses(decided_project):
    _store, _codebook, confirmed = tables(decided_project)
    assert sorted((c.transcript, c.segment, c.code, c.coders) for c in confirmed) == [
        ("lead-01", 1, "timescale", "ann"),
        ("lead-01", 2, "sustainability", "ann"),
        ("lead-01", 2, "timescale", "ann"),
        ("lead-02", 1, "sustainability", "ann"),
        ("partner-01", 1, "timescale", "bob"),
    ]
    with pytest.raises(AnalysisError, match="unknown status 'maybe'"):
        tables(decided_project, status="maybe")


def test_suggested_status_counts_only_undecided_suggestions(review_project):
    store, codebook, frame = tables(review_project, status="suggested")
    assert sorted((c.transcript, c.segment, c.code) for c in frame) == [
        ("lead-01", 1, "timescale"), ("lead-01", 2, "sustainability"), ("partner-01", 2, "sustainability"), ("partner-01", 2, "timescale"),
    ]
    segment = store.codable_segments("lead-01")[0].id
    store.add_decision(segment, "timescale", "rejected", coder="ann")
    _s, _c, after = tables(review_project, status="suggested")
    assert len(after) == 3
    _s, _c, both = tables(review_project, status="all")
    assert len(both) == 3  # a rejected suggestion counts nowhere


def test_cooccurrence_and_jaccard(decided_project):
    _store, codebook, frame = tables(decided_project)
    table = cooccurrence(frame, codebook)
    assert [dict(zip(table.columns, row)) for row in table.rows] == [
        {"code_1": "timescale", "code_2": "sustainability", "n1": 3, "n2": 2, "n12": 1, "jaccard": 0.25},
    ]


def test_respondent_matrix(decided_project):
    store, codebook, frame = tables(decided_project)
    matrix = respondent_matrix(store, codebook, frame)
    assert matrix.columns == ["transcript", "role", "sector", "challenges", "timescale", "sustainability", "other"]
    rows = {row[0]: dict(zip(matrix.columns, row)) for row in matrix.rows}
    assert [rows["lead-01"][code] for code in ("challenges", "timescale", "sustainability")] == [2, 2, 1]
    assert rows["stakeholder-01"]["challenges"] == 0


def test_excerpts_filtered_by_code_and_attribute(decided_project):
    store, codebook, frame = tables(decided_project)
    everything = excerpts(store, codebook, frame)
    assert len(everything) == 5
    assert everything.columns[:5] == ["transcript", "segment", "speaker", "code", "label"]
    lead_timescale = excerpts(store, codebook, frame, code="timescale", where={"role": "lead"})
    assert [[row[0], row[1], row[lead_timescale.columns.index("text")]] for row in lead_timescale.rows] == [
        ["lead-01", 1, "First answer about things."],
        ["lead-01", 2, "Second answer about more things."],
    ]
    assert len(excerpts(store, codebook, frame, code="challenges")) == 5
    with pytest.raises(AnalysisError):
        excerpts(store, codebook, frame, code="nope")
