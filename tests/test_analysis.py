from __future__ import annotations

import pytest

from qualcode.analysis import coded_segments, cooccurrence, excerpts, respondent_matrix, theme_frequency
from qualcode.errors import AnalysisError
from qualcode.project import Project


def tables(project, **kwargs):
    opened = Project.open(project)
    store = opened.store()
    codebook = opened.codebook()
    return store, codebook, coded_segments(store, codebook, **kwargs)


def cells(table, code, group):
    row = table.loc[code]
    return (row[f"{group}: respondents"], row[f"{group}: %"], row[f"{group}: segments"])


def test_frequency_by_role_matches_hand_counts(decided_project):
    store, codebook, frame = tables(decided_project)
    table = theme_frequency(store, codebook, frame)
    assert table.attrs["groups"] == ["lead", "partner", "stakeholder"]
    assert list(table.index) == ["N", "challenges", "timescale", "sustainability", "other"]
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
    assert sorted(zip(confirmed["transcript"], confirmed["segment"], confirmed["code"], confirmed["coders"])) == [
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
    assert sorted(zip(frame["transcript"], frame["segment"], frame["code"])) == [
        ("lead-01", 1, "timescale"), ("lead-01", 2, "sustainability"), ("partner-01", 2, "sustainability"), ("partner-01", 2, "timescale"),
    ]
    segment = store.coded_segments("lead-01")[0]["id"]
    store.add_decision(segment, "timescale", "rejected", coder="ann")
    _s, _c, after = tables(review_project, status="suggested")
    assert len(after) == 3
    _s, _c, both = tables(review_project, status="all")
    assert len(both) == 3  # a rejected suggestion counts nowhere


def test_cooccurrence_and_jaccard(decided_project):
    _store, codebook, frame = tables(decided_project)
    table = cooccurrence(frame, codebook)
    assert table.to_dict("records") == [
        {"code_1": "timescale", "code_2": "sustainability", "n1": 3, "n2": 2, "n12": 1, "jaccard": 0.25},
    ]


def test_respondent_matrix(decided_project):
    store, codebook, frame = tables(decided_project)
    matrix = respondent_matrix(store, codebook, frame)
    assert list(matrix.columns) == ["transcript", "role", "sector", "challenges", "timescale", "sustainability", "other"]
    assert matrix.set_index("transcript").loc["lead-01", ["challenges", "timescale", "sustainability"]].tolist() == [2, 2, 1]
    assert matrix.set_index("transcript").loc["stakeholder-01", "challenges"] == 0


def test_excerpts_filtered_by_code_and_attribute(decided_project):
    store, codebook, frame = tables(decided_project)
    everything = excerpts(store, codebook, frame)
    assert len(everything) == 5
    assert list(everything.columns)[:5] == ["transcript", "segment", "speaker", "code", "label"]
    lead_timescale = excerpts(store, codebook, frame, code="timescale", where={"role": "lead"})
    assert lead_timescale[["transcript", "segment", "text"]].values.tolist() == [
        ["lead-01", 1, "First answer about things."],
        ["lead-01", 2, "Second answer about more things."],
    ]
    assert len(excerpts(store, codebook, frame, code="challenges")) == 5
    with pytest.raises(AnalysisError):
        excerpts(store, codebook, frame, code="nope")
