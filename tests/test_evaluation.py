from __future__ import annotations

import random

import pytest
from conftest import call, open_store
from sklearn.metrics import cohen_kappa_score

from qualcode.analysis.evaluation import agreement, cohen_kappa, evaluate, krippendorff_alpha_nominal, precision_recall_f1
from qualcode.errors import EvaluationError
from qualcode.exchange.export import export
from qualcode.store import Entry


def test_cohen_kappa_hand_computed():
    # 10 units: agree on 7 (3 yes, 4 no); p_o = 0.7; p_e = 0.5*0.5 + 0.5*0.5 = 0.5 -> kappa 0.4
    a = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([1, 1], [1, 1]) is None  # all chance agreement: undefined
    assert cohen_kappa([0, 1], [1, 0]) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_sklearn(seed):
    rng = random.Random(seed)
    a = [rng.random() < 0.3 for _ in range(200)]
    b = [x if rng.random() < 0.8 else not x for x in a]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_krippendorff_alpha_textbook_examples():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, missing values.
    data = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    units = list(zip(*data.values()))
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=0.0005)
    # Same paper, two coders, binary data, no missing values: alpha = 0.095.
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha_nominal(list(zip(a, b))) == pytest.approx(0.095, abs=0.0005)
    assert krippendorff_alpha_nominal([(1, 1), (1, 1)]) is None


def test_precision_recall_f1():
    assert precision_recall_f1([1, 1, 0, 0], [1, 0, 1, 0]) == (0.5, 0.5, 0.5)
    assert precision_recall_f1([0, 0], [0, 0]) == (None, None, None)
    assert precision_recall_f1([1, 0], [0, 0]) == (None, 0.0, 0.0)


@pytest.fixture
def two_coders(decided_project):
    """ann and bob both review lead-01 and lead-02 (5 segments); they differ on two."""
    with open_store(decided_project) as store:
        segments = {tid: [row.id for row in store.codable_segments(tid)] for tid in ("lead-01", "lead-02")}
        ids = segments["lead-01"] + segments["lead-02"]
        store.record([Entry(segment_id, None, "reviewed") for segment_id in ids], coder="ann")
        store.record([Entry(ids[0], "timescale", "accepted"), Entry(ids[1], "timescale", "accepted"), Entry(ids[3], "sustainability", "added")], coder="bob")
        store.record([Entry(segment_id, None, "reviewed") for segment_id in ids], coder="bob")
    return decided_project


def test_agreement_between_two_coders(two_coders):
    report = call(agreement, two_coders, sources=["coder:ann", "coder:bob"])
    # Both reviewed lead-01 (3 segments) and lead-02 (2); both also decided on partner-01's first.
    assert report.units == 6
    by_code = {row.code: row for row in report.codes}
    # timescale: both say yes on lead-01 s1 and s2; on partner-01 s1 ann rejected, bob accepted.
    t = by_code["timescale"]
    assert (t.both, t.only_a, t.only_b, t.neither) == (2, 0, 1, 3)
    assert t.kappa == pytest.approx(cohen_kappa_score([1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 1]))
    assert (t.precision, t.recall) == (pytest.approx(2 / 3), 1.0)
    # sustainability: ann yes on lead-01 s2 and lead-02 s1; bob only on lead-02 s1.
    s = by_code["sustainability"]
    assert (s.both, s.only_a, s.only_b, s.neither) == (1, 1, 0, 4)
    assert s.kappa == pytest.approx(cohen_kappa_score([0, 1, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0]))
    assert (s.precision, s.recall) == (1.0, 0.5)
    assert report.overall.units == 12
    assert [(d.transcript, d.segment, d.code, d.values["coder:ann"]) for d in report.disagreements] == [
        ("lead-01", 2, "sustainability", True),
        ("partner-01", 1, "timescale", False),
    ]


def test_three_sources_give_krippendorff_alpha(two_coders):
    report = call(agreement, two_coders, sources=["coder:ann", "coder:bob", "machine"])
    assert report.alpha is not None and -1 <= report.alpha <= 1
    assert all(row.alpha is not None or row.both + row.only_a + row.only_b == 0 for row in report.codes)


def test_gold_csv_by_offsets_and_by_text(decided_project, tmp_path):
    with open_store(decided_project) as store:
        first = store.codable_segments("lead-01")[0]
    gold = tmp_path / "gold.csv"
    gold.write_text(
        "transcript,start,end,code\n"
        f"lead-01,{first.start},{first.start + 5},timescale\n"
        f"lead-02,0,0,Sustainability\n",
        encoding="utf-8",
    )
    report = call(agreement, decided_project, sources=[f"gold:{gold}", "coder:ann"])
    by_code = {row.code: row for row in report.codes}
    assert by_code["timescale"].both == 1 and by_code["timescale"].only_b == 1  # ann also coded lead-01 s2
    quotes = tmp_path / "quotes.csv"
    quotes.write_text("transcript,text,code\nlead-01,Second   answer about,timescale\nlead-02,not in the text,timescale\nlead-01,First answer,nonexistent\n", encoding="utf-8")
    report = call(agreement, decided_project, sources=[f"gold:{quotes}", "coder:ann"])
    assert {row.code: row.both for row in report.codes}["timescale"] == 1
    assert any("quote not found in lead-02" in w for w in report.warnings)
    assert any("code 'nonexistent' is not in the codebook (1 rows ignored)" in w for w in report.warnings)


def test_gold_qdpx_from_an_export(two_coders):
    call(export, two_coders, formats="qdpx", coder="bob")
    report = call(agreement, two_coders, sources=[f"gold:{two_coders / 'exports' / 'project.qdpx'}", "coder:bob"])
    assert report.overall.kappa == pytest.approx(1.0) and not report.disagreements


def test_bad_sources(decided_project, tmp_path):
    with pytest.raises(EvaluationError, match="no decisions by coder 'zoe'. Fix: coders in this project: ann, bob"):
        call(agreement, decided_project, sources=["coder:zoe", "machine"])
    with pytest.raises(EvaluationError, match="unknown source 'robot'"):
        call(agreement, decided_project, sources=["robot", "machine"])
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n1,x\n")
    with pytest.raises(EvaluationError, match=r"bad.csv:1: gold CSV columns are id, label. Fix: use 'transcript,start,end,code'"):
        call(agreement, decided_project, sources=[f"gold:{bad}", "machine"])


def test_evaluate_lists_false_positives_with_evidence_and_false_negatives(review_project, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("transcript,text,code\nlead-01,The deadline was brutal,timescale\npartner-01,housing association,sustainability\n", encoding="utf-8")
    result = call(evaluate, review_project, gold=gold)
    rows = {row.code: row for row in result.agreement.codes}
    assert (rows["timescale"].both, rows["timescale"].only_b) == (1, 1)
    assert (rows["sustainability"].both, rows["sustainability"].only_a, rows["sustainability"].only_b) == (0, 1, 2)
    [fp] = result.false_positives["timescale"]
    assert (fp.transcript, fp.segment) == ("partner-01", 2) and fp.evidence.startswith("rules 0.")
    assert "deadline" in fp.evidence
    [fn] = result.false_negatives["sustainability"]
    assert (fn.transcript, fn.segment) == ("partner-01", 1)
