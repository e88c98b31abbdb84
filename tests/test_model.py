from __future__ import annotations

import pytest
from conftest import call, open_store, write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.project import Project
from qualcode.review.session import ReviewFilter, ReviewSession
from qualcode.run.coding import code
from qualcode.suggest.model import ModelSet, fit_models
from qualcode.suggest.training import train

CODEBOOK = """\
codes:
  - id: money
    label: Money
    keywords: [budget]
  - id: people
    label: People
    keywords: [staff]
"""

MONEY = ["There was a shortfall in the cash flow.", "The shortfall meant the overspend grew.", "A cash shortfall hit us hard.",
         "We faced an overspend and a shortfall.", "Shortfall after shortfall in cash.", "The overspend was a worry for cash.",
         "Cash shortfall again this quarter.", "An overspend, then another shortfall."]
OTHER = ["We met the team on Tuesday.", "The weather was grim all week.", "Our office moved to a new street.", "The report was long and dull.",
         "We had lunch at the cafe.", "The train was late again.", "A new logo was designed.", "The website got a refresh."]


@pytest.fixture
def synthetic(tmp_path):
    """Reviewed segments where 'money' is signalled by words the codebook lacks (shortfall, overspend, cash)."""
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "qualcode.yaml", "retrain_after: 0\n")
    train_turns = [f"Q: Question?\nA: {text}" for text in MONEY + OTHER]
    write(tmp_path / "transcripts" / "train-01.txt", "---\nrole: lead\n---\n" + "\n\n".join(train_turns) + "\n")
    write(tmp_path / "transcripts" / "new-01.txt", "---\nrole: partner\n---\nQ: And now?\nA: Another cash shortfall is coming.\n\nQ: Else?\nA: The garden looks lovely.\n")
    call(code, tmp_path)
    opened = Project.open(tmp_path)
    with opened:
        session = ReviewSession(opened, coder="ann", filters=ReviewFilter(include_unsuggested=True, transcript="train-01"))
        for item in list(session.items):
            if any(word in item.text for word in ("shortfall", "overspend")):
                session.add_code("money")
            session.accept_all()
    return tmp_path


def suggestions(project, transcript):
    with open_store(project) as store:
        segments = {row.id: row.text for row in store.codable_segments(transcript)}
        return sorted((segments[row.segment_id], row.code, row.source, row.confidence) for row in store.suggestions() if row.segment_id in segments)


def test_rules_alone_miss_the_code(synthetic):
    assert suggestions(synthetic, "new-01") == []


def test_training_learns_words_absent_from_the_codebook(synthetic):
    result = call(train, synthetic, seed=0)
    assert result.run == 1 and result.examples == 16
    assert result.models["money"]["positives"] == 8 and result.models["money"]["negatives"] == 8
    assert result.models["money"]["cv_f1"] >= 0.8
    assert result.too_few == {"people": {"positives": 0, "negatives": 16, "needed": 5}}
    assert result.rescored == 2  # the unseen transcript's segments; the reviewed ones keep what ann saw
    [(text, code_id, source, confidence)] = suggestions(synthetic, "new-01")
    assert (text, code_id, source) == ("Another cash shortfall is coming.", "money", "model")
    assert confidence >= 0.5
    reviewed = suggestions(synthetic, "train-01")
    assert reviewed == []  # never re-scored: no in-sample predictions stored


def test_retraining_is_deterministic_for_a_fixed_seed(synthetic):
    call(train, synthetic, seed=7)
    first = suggestions(synthetic, "new-01")
    with open_store(synthetic) as store:
        first_run = store.latest_model_run(parameters=True)
    call(train, synthetic, seed=7)
    with open_store(synthetic) as store:
        second_run = store.latest_model_run(parameters=True)
    assert second_run.id == 2
    models_a = ModelSet.from_bytes(first_run.parameters, run=1)
    models_b = ModelSet.from_bytes(second_run.parameters, run=2)
    assert (models_a.models["money"].coef == models_b.models["money"].coef).all()
    assert suggestions(synthetic, "new-01") == first


def test_code_refits_automatically_after_enough_new_decisions(synthetic):
    write(synthetic / "qualcode.yaml", "retrain_after: 10\n")
    result = call(code, synthetic)
    assert result.retrained is not None and result.retrained.run == 1
    assert [row[1] for row in suggestions(synthetic, "new-01")] == ["money"]
    again = call(code, synthetic)
    assert again.retrained is None  # no new decisions since


def test_new_transcripts_are_suggested_with_the_models(synthetic):
    call(train, synthetic, seed=0)
    write(synthetic / "transcripts" / "new-02.txt", "Q: Money?\nA: The overspend and the cash shortfall.\n\nQ: Staff?\nA: Our staff were great.\n")
    call(code, synthetic)
    assert sorted((row[0], row[1], row[2]) for row in suggestions(synthetic, "new-02")) == [
        ("Our staff were great.", "people", "rules"),
        ("The overspend and the cash shortfall.", "money", "model"),
    ]


def test_a_model_with_no_evidence_against_a_rule_only_adds_and_the_rules_yes_stands(synthetic):
    """'budget' never came up in review: nothing says the rule is wrong, so the model adds beside it and does not overrule it."""
    result = call(train, synthetic, seed=0)
    assert result.models["money"]["role"] == "adds"
    write(synthetic / "transcripts" / "new-03.txt", "Q: ?\nA: The budget was agreed.\n\nQ: ?\nA: A cash shortfall and an overspend.\n")
    call(code, synthetic)
    assert [(text, code_id, source) for text, code_id, source, _confidence in suggestions(synthetic, "new-03")] == [
        ("A cash shortfall and an overspend.", "money", "model"), ("The budget was agreed.", "money", "rules")]


MISLEADING = ["The budget meeting was on Tuesday.", "We drew up the budget for the garden.", "Budget day came and went.",
              "The budget template was long and dull.", "Our budget office moved street.", "A budget review of the website.",
              "The budget slides got a refresh.", "We printed the budget again."]


def test_a_rule_the_decisions_keep_rejecting_is_overruled_by_a_model_that_decides(sample_nlp):
    """Issue 22: the model decides a code (and may say no where its rule fires) only where that beat the rules on the
    reviewed segments: here 'budget' fires on eight segments the researcher rejected."""
    from qualcode.codebook import parse_codebook
    from qualcode.suggest.model import blend
    from qualcode.suggest.pipeline import build_pipeline
    from qualcode.vocabulary import Role, Source

    nlp = build_pipeline(parse_codebook(CODEBOOK))
    docs = list(nlp.pipe(MONEY + OTHER + MISLEADING))
    models = fit_models(docs, {"money": [1] * len(MONEY) + [0] * (len(OTHER) + len(MISLEADING))}, rule_codes=["money", "people"], seed=0)
    money = models.models["money"]
    assert money.role == Role.DECIDES and money.cv_kappa > money.rules_kappa + money.margin and money.rules_kappa < 0
    [budget, cash] = blend(list(nlp.pipe(["The budget was printed on Tuesday.", "Another cash shortfall."])), models)
    assert (budget[0].source, budget[0].says_yes) == (Source.BOTH, False)  # shown, with the model's no
    assert (cash[0].source, cash[0].says_yes) == (Source.MODEL, True)


GOOD_RULE = ["Our staff left.", "The staff were tired.", "New staff joined.", "Staff morale fell.", "We lost staff.", "Staff costs rose."]


def test_a_model_that_cannot_beat_good_rules_by_a_margin_does_not_speak(sample_nlp):
    """Issue 22: six reviewed examples, all fired by a rule that is right every time: whatever the model's estimate, it
    cannot beat the rules by twice the standard error, so the code keeps its rules (and the run says why)."""
    from qualcode.codebook import parse_codebook
    from qualcode.suggest.model import MARGIN_ERRORS
    from qualcode.suggest.pipeline import build_pipeline

    nlp = build_pipeline(parse_codebook(CODEBOOK))
    docs = list(nlp.pipe(GOOD_RULE + OTHER))
    models = fit_models(docs, {"people": [1] * len(GOOD_RULE) + [0] * len(OTHER)}, rule_codes=["money", "people"], seed=0)
    assert "people" not in models.models and MARGIN_ERRORS == 2.0
    judged = models.judged["people"]
    assert judged.rules_kappa == 1.0 and not judged.learning and models.summary()["held_back"]["people"]["learning"] is False


def test_a_weak_model_does_not_speak_and_says_it_is_learning(sample_nlp):
    """Issue 22: a code without rules whose model cannot reach the floor (kappa 0.2) suggests nothing, and the run says
    the code is still learning (a manual code at kappa 0.13 was suggested at '0.05 model' on plain answers of another code)."""
    import random

    from qualcode.analysis.status import model_rows
    from qualcode.codebook import parse_codebook
    from qualcode.suggest.model import KAPPA_FLOOR, blend
    from qualcode.suggest.pipeline import build_pipeline
    from qualcode.vocabulary import Speaker

    nlp = build_pipeline(parse_codebook(CODEBOOK + "  - id: other\n    label: Other\n    manual: true\n"))
    texts = MONEY + OTHER + MISLEADING + GOOD_RULE
    docs = list(nlp.pipe(texts))
    generator = random.Random(3)
    noise = [int(generator.random() < 0.4) for _ in texts]  # a code the words do not tell
    models = fit_models(docs, {"other": noise}, rule_codes=["money", "people"], seed=0)
    assert "other" not in models.models and models.judged["other"].model_kappa < KAPPA_FLOOR and models.judged["other"].learning
    assert all(suggestion.code != "other" for row in blend(docs, models) for suggestion in row)

    [row] = model_rows(models.summary(), ["money", "people"])
    assert (row.code, row.speaker, row.learning) == ("other", Speaker.NOTHING, True)


def test_fit_models_skips_codes_with_too_few_examples(sample_nlp):
    docs = list(sample_nlp.pipe(["deadline"] * 3 + ["nothing"] * 3))
    models = fit_models(docs, {"timescale": [1, 1, 1, 0, 0, 0]}, rule_codes=["timescale"], min_examples=5)
    assert models.models == {} and models.skipped == {"timescale": (3, 3)}



def test_shown_confidence_is_a_calibrated_probability_and_the_decision_is_kept_beside_it(synthetic):
    """Issue 13: the confidence of a learned suggestion is Platt-calibrated; whether the machine says 'applies' is its own
    field, stored and read back, and a rule the model overrules is shown in review but counted as no suggested coding."""
    import numpy as np

    from qualcode.analysis.counts import codings
    from qualcode.codebook import load_codebook
    from qualcode.suggest.model import blend
    from qualcode.suggest.pipeline import build_pipeline
    from qualcode.suggestion import Suggestion
    from qualcode.vocabulary import Source

    call(train, synthetic, seed=0)
    with open_store(synthetic) as store:
        run = store.latest_model_run(parameters=True)
        models = ModelSet.from_bytes(run.parameters, run=run.id)
        segment_id = store.codable_segments("new-01")[0].id
    money = models.models["money"]
    slope, intercept = money.calibration
    assert slope > 0 and (slope, intercept) != (1.0, 0.0) and run.summary["codes"]["money"]["calibration"] == [slope, intercept]
    scores = np.array([0.1, 0.5, 0.9])
    calibrated = money.calibrated(scores)
    assert list(calibrated) == sorted(calibrated) and all(0 < p < 1 for p in calibrated)
    nlp = build_pipeline(load_codebook(synthetic / "codebook.yaml"))
    texts = ["A cash shortfall and an overspend.", "The budget was fine and the garden lovely."]
    docs = list(nlp.pipe(texts))
    [first, second] = blend(docs, models)
    decision = models.probabilities(docs)["money"]
    assert first[0].applies is True and first[0].confidence == round(money.calibrated([decision[0]])[0], 3)
    assert second[0].source == Source.RULES and second[0].applies is None  # 'budget' fired; the model only adds (no evidence against it)
    with open_store(synthetic) as store:
        store.replace_segment_suggestions([(segment_id, [Suggestion("money", 0.42, [], Source.BOTH, False)])], pipeline_version="test")
        [stored] = [row for row in store.suggestions() if row.segment_id == segment_id]
        assert stored.suggestion.applies is False and not stored.suggestion.says_yes
        assert [c for c in codings(store, load_codebook(synthetic / "codebook.yaml"), status="suggested") if c.segment == 1
                and c.transcript == "new-01"] == []
        assert ("money", "new-01") not in {(code_id, transcript) for code_id, transcript, _n in store.suggestion_reach({"money": ["money"]})}
        store.replace_segment_suggestions([(segment_id, [Suggestion("money", 0.42, [], Source.BOTH, True)])], pipeline_version="test")
        assert [c.confidence for c in codings(store, load_codebook(synthetic / "codebook.yaml"), status="suggested")
                if c.transcript == "new-01" and c.segment == 1] == [0.42]
        assert ("money", "new-01", 1) in store.suggestion_reach({"money": ["money"]})


def test_each_model_has_a_learning_curve_and_says_how_many_more_decisions_it_wants(synthetic):
    """Issue 13: status shows, per code, where the learning curve levels off and about how many more reviewed segments reach it.
    Issue 22: never read beyond the project's own size (a 113-segment study was told '≈41,587 more')."""
    from qualcode.suggest.model import CURVE_MARGIN, examples_to_reach, learning_outlook

    # kappa = 0.8 - 2 / sqrt(n): in a project of 10,000 segments it ends near 0.78, and comes within 0.05 of that at n = 817
    curve = [(n, 0.8 - 2 / n**0.5) for n in (100, 150, 200)]
    assert learning_outlook(curve, 10_000) == (0.78, 817 - 200) and CURVE_MARGIN == 0.05
    # in a project of 300 segments it ends near 0.68, within 0.05 of where it is at 200: more review adds little
    assert learning_outlook(curve, 300) == (0.68, 0)
    assert learning_outlook(curve, 200) == (0.66, 0)  # everything reviewed: nothing to say about more
    for size in (250, 400, 1_000, 5_000, 100_000):
        level, more = learning_outlook(curve, size)
        assert level is not None and level <= 0.8 and more is not None and 0 <= more <= size - 200
    assert learning_outlook([(50, 0.6), (75, 0.58), (100, 0.57)], 1_000) == (0.6, 0)  # no better with more: nothing to gain
    assert learning_outlook([(100, 0.5)], 1_000) == (None, None)
    # how many more to reach the floor a model must reach to speak, within the project only
    weak = [(n, 0.4 - 4 / n**0.5) for n in (40, 60, 80)]  # 0.2 at n = 400
    assert examples_to_reach(weak, 0.2, 1_000) == 400 - 80 and examples_to_reach(weak, 0.2, 300) is None
    result = call(train, synthetic, seed=0)
    info = result.models["money"]
    assert [n for n, _kappa in info["curve"]] == [8, 12, 16] and info["curve"][-1][1] == info["cv_kappa"]
    assert info["more_decisions"] is None  # 8 positives: too few for the curve to say
    runner = CliRunner()
    out = runner.invoke(app, ["status", "--project", str(synthetic)], env={"COLUMNS": "120"}).output
    assert "not enough examples to say" in out and "model κ" in out and "rules κ" in out


def test_the_vector_component_is_left_out_and_the_models_compute_the_vectors_they_read():
    """Issue 28: only the learned models read sentence vectors, so `suggest` leaves the vector component out: without
    models none is computed (a third of the pipeline's time), and with them their features compute each Doc's vector,
    a batch at a time, to the same suggestions as the whole pipeline gives."""
    from qualcode.codebook import parse_codebook
    from qualcode.suggest.model import blend, suggest
    from qualcode.suggest.pipeline import build_pipeline, suggestions_from_doc
    from qualcode.suggest.vectors import EXTENSION
    from qualcode.vocabulary import DEFAULT_VECTORS

    nlp = build_pipeline(parse_codebook(CODEBOOK), vectors=DEFAULT_VECTORS)
    texts = ["The budget was printed on Tuesday.", "Another cash shortfall.", "Our staff left.", "An overspend, then a budget cut."]
    plain = [nlp.make_doc(text) for text in texts]
    rules = suggest(nlp, plain)
    assert all(doc._.get(EXTENSION) is None for doc in plain)
    assert rules == [suggestions_from_doc(nlp(text)) for text in texts]  # nlp() runs every component: the same rules
    models = fit_models(list(nlp.pipe(MONEY + OTHER + MISLEADING)), {"money": [1] * len(MONEY) + [0] * (len(OTHER) + len(MISLEADING))},
                        rule_codes=["money", "people"], seed=0, vectors=DEFAULT_VECTORS)
    assert models.sentence_vectors == DEFAULT_VECTORS and "money" in models.models
    whole = list(nlp.pipe(texts))  # vectors written by the component
    assert all(doc._.get(EXTENSION) is not None for doc in whole)
    assert suggest(nlp, texts, models=models) == blend(whole, models)


def test_a_run_that_rescores_with_new_models_leaves_the_transcripts_it_just_suggested_with_them(synthetic):
    """Issue 28: models fitted without re-scoring (a fit cut short) are applied to the undecided segments by the next
    `code`; the transcripts that run imports were suggested with those models already and are not scored twice."""
    call(train, synthetic, seed=0, rescore=False)
    write(synthetic / "transcripts" / "new-02.txt", "Q: Money?\nA: The overspend and the cash shortfall.\n\nQ: Staff?\nA: Our staff were great.\n")
    result = call(code, synthetic)
    with open_store(synthetic) as store:
        undecided = store.undecided_segments()
    assert result.imported == ["new-02"]
    assert result.rescored == len([row for row in undecided if row.transcript_id != "new-02"]) == 2  # new-01's two answers
    assert ("The overspend and the cash shortfall.", "money", "model") in [row[:3] for row in suggestions(synthetic, "new-02")]


def test_files_scored_together_by_the_models_get_what_each_gets_alone(synthetic):
    """Issue 28: a worker scores the segments of several files with the models in one call; the suggestions are those
    of each file coded alone, a file that cannot be read is skipped alone, and a file longer than a batch still codes."""
    from qualcode.run.planning import worker_spec
    from qualcode.run.worker import MODEL_BATCH, process_file, process_files

    call(train, synthetic, seed=0)
    folder = synthetic / "transcripts"
    (folder / "bad.docx").write_bytes(b"not a Word file")
    long_turns = [f"Q: Q{index}?\nA: {MONEY[index % len(MONEY)]} {OTHER[index % len(OTHER)]}" for index in range(MODEL_BATCH + 40)]
    write(folder / "long.txt", "\n\n".join(long_turns) + "\n")
    paths = [folder / "train-01.txt", folder / "bad.docx", folder / "new-01.txt", folder / "long.txt", folder / "train-01.txt"]
    with Project.open(synthetic) as project:
        spec, _version = worker_spec(project, project.store)
        assert spec.models() is not None
        together = process_files(spec, paths)
        alone = [process_file(spec, path) for path in paths]
    assert [result.path for result in together] == paths
    assert [result.error is None for result in together] == [result.error is None for result in alone] == [True, False, True, True, True]
    assert [result.suggestions for result in together] == [result.suggestions for result in alone]
    assert any(suggestion.source == "model" for per_segment in together[3].suggestions for suggestion in per_segment)


def test_terms_weigh_docs_as_scikit_learns_vectorizer_weighs_their_feature_text(sample_nlp):
    """``Terms.transform`` reads NORM hashes, not text: it must give the vectorizer's rows over ``feature_text``, for words
    whose NORM is a spaCy symbol ("number"), numbers, repeated words, NORMs with spaces or none, and Docs with no word."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from qualcode.suggest.terms import VECTORIZER_PARAMS, Terms, feature_text

    texts = MONEY + OTHER + ["The numbers look good: 1,000 people and 20 staff.", "Number after number, the the the.", "", "!!! ...",
                             "We flew to New York by aeroplane.", "Our budget, our staff, our cash shortfall and the number of staff."]
    docs = list(sample_nlp.pipe(texts))
    odd = docs[-2]  # NORMs a trained pipeline's tables can give: with a space inside or around, and empty
    odd[3].norm_, odd[4].norm_, odd[6].norm_ = "new york", "", "airplanes "
    fitted_on = [feature_text(doc) for doc in docs[::2]] + ["new york", "york by", "airplanes", "fly to"]
    terms = Terms.fit(fitted_on, min_df=1)
    reference = TfidfVectorizer(min_df=1, **VECTORIZER_PARAMS).fit(fitted_on)
    assert terms.vocabulary == sorted(reference.vocabulary_, key=reference.vocabulary_.get)
    expected = reference.transform([feature_text(doc) for doc in docs]).toarray()
    for batch in (docs, docs[:1], docs[-3:]):  # the whole, one Doc, and Docs the tables have seen before
        got = terms.transform(batch).toarray()
        assert got.shape == (len(batch), len(terms.vocabulary))
        assert abs(got - expected[[docs.index(doc) for doc in batch]]).max() < 1e-12
    assert terms.transform([]).shape == (0, len(terms.vocabulary))
    columns = set(terms.transform([odd]).indices)
    assert {terms.vocabulary.index(term) for term in ("new york", "york by", "airplanes", "fly to")} <= columns


def test_coding_with_models_does_not_import_scikit_learn(synthetic):
    """Scoring segments needs the fitted parameters, not scikit-learn (about a second to import): `code` in a process of
    its own suggests with the models and leaves it unimported."""
    import subprocess
    import sys

    call(train, synthetic, seed=0)
    write(synthetic / "transcripts" / "new-02.txt", "Q: Money?\nA: The overspend and the cash shortfall.\n")
    script = ("import sys\nfrom qualcode.project import Project\nfrom qualcode.run.coding import code\n"
              f"with Project.open({str(synthetic)!r}) as project:\n    result = code(project)\n"
              "print(sorted(result.imported), sorted(name for name in sys.modules if name.split('.')[0] == 'sklearn'))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "['new-02'] []"
    assert [(row[1], row[2]) for row in suggestions(synthetic, "new-02")] == [("money", "model")]


def test_terms_of_a_damaged_model_run_never_match_and_break_nothing(sample_nlp):
    import numpy as np

    from qualcode.suggest.terms import Terms

    terms = Terms(["cash shortfall again", "", " cash", "cash", "cash shortfall"], np.ones(5), 1)  # only the last two can occur
    matrix = terms.transform([sample_nlp("Cash shortfall again this quarter.")])
    assert sorted(matrix.indices.tolist()) == [3, 4]
