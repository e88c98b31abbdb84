"""Sentence vectors (issue 13): the shipped static table, the spaCy component, the setting, the models and cold codes."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from conftest import call, open_store, write

from qualcode.codebook import parse_codebook
from qualcode.errors import SettingsError
from qualcode.project import Project
from qualcode.review.ordering import cold_similarity, uncertainty_scores
from qualcode.run.coding import code
from qualcode.settings import load_settings
from qualcode.store import Entry
from qualcode.suggest.model import ModelSet, fit_models
from qualcode.suggest.pipeline import build_pipeline
from qualcode.suggest.vectors import DATA, EXTENSION, load_vectors
from qualcode.vocabulary import VectorModel

CODEBOOK = "codes:\n  - id: money\n    label: Money\n    description: Funding, budgets and what things cost.\n    keywords: [budget]\n"


@pytest.fixture(scope="module")
def table():
    return load_vectors(VectorModel.MINILM_STATIC)


def cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_table_is_read_without_pickles_and_is_what_its_metadata_says(table):
    with zipfile.ZipFile(DATA / "minilm-static.npz") as archive:
        assert sorted(archive.namelist()) == ["meta.npy", "scale.npy", "table.npy", "vocabulary.npy"]
    with np.load(DATA / "minilm-static.npz", allow_pickle=False) as data:  # would raise on an object array
        assert data["table"].dtype == np.int8 and data["vocabulary"].dtype.kind == "U"
    assert table.model_id == "minilm-l6-static-256-v1" and table.table.shape == (30522, 256)


def test_words_are_cut_as_bert_cuts_them(table):
    pieces = [list(table.index)[i] for i in table.word_ids("Underfunded,")]
    assert pieces[-1] == "," and pieces[0] == "under" and all(piece.startswith("##") for piece in pieces[1:-1])
    assert table.word_ids("café") == table.word_ids("cafe")  # accents stripped, as the uncased model was trained
    assert table.word_ids("x" * 101) == [table.unknown]


def test_vectors_carry_meaning_the_words_do_not_share(table):
    money = table.text_vector("We ran out of money last year.")
    funding = table.text_vector("The grant funding ended in March.")
    weather = table.text_vector("It rained all week at the seaside.")
    assert cosine(money, funding) > cosine(money, weather) + 0.1


def test_the_component_writes_a_unit_vector_and_vectors_none_leaves_it_out(tmp_path):
    codebook = parse_codebook(CODEBOOK)
    nlp = build_pipeline(codebook, vectors=VectorModel.MINILM_STATIC)
    assert nlp.pipe_names == ["qualcode_vectors", "qualcode_suggester"]
    doc = nlp("The budget was cut.")
    assert doc._.get(EXTENSION).shape == (256,) and abs(float(np.linalg.norm(doc._.get(EXTENSION))) - 1.0) < 1e-5
    assert build_pipeline(codebook, vectors=VectorModel.NONE).pipe_names == ["qualcode_suggester"]
    write(tmp_path / "qualcode.yaml", "vectors: none\n")
    assert load_settings(tmp_path).vectors == VectorModel.NONE
    assert load_settings(tmp_path / "nowhere").vectors == VectorModel.MINILM_STATIC  # the default
    write(tmp_path / "qualcode.yaml", "segment_words: 50\nvectors: glove\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(tmp_path)
    assert "qualcode.yaml:2: vectors:" in str(raised.value) and "unknown vectors 'glove'" in str(raised.value) and "minilm-static" in str(raised.value)


def test_models_learn_from_vectors_and_keep_them_through_storage():
    codebook = parse_codebook(CODEBOOK)
    nlp = build_pipeline(codebook, vectors=VectorModel.MINILM_STATIC)
    yes = ["We ran out of money.", "The grant funding ended.", "Cash was short all year.", "Our finances were stretched.",
           "The funds dried up.", "Salaries could not be paid.", "Donations fell sharply.", "The accounts showed a deficit."]
    no = ["It rained all week.", "The train was late.", "We painted the hall.", "The dog barked at night.",
          "Lunch was at noon.", "The garden is lovely.", "She sang a song.", "The river flooded the road."]
    docs = list(nlp.pipe(yes + no))
    labels = {"money": [1] * len(yes) + [0] * len(no)}
    with_vectors = fit_models(docs, labels, rule_codes=["money"], vectors=VectorModel.MINILM_STATIC)
    without = fit_models(docs, labels, rule_codes=["money"], vectors=VectorModel.NONE)
    unseen = ["Paying the bills became impossible.", "The weather was sunny and warm."]
    # read back from bytes, and applied to Docs of a pipeline without the component: the vectors are computed then
    stored = ModelSet.from_bytes(with_vectors.to_bytes(), run=1)
    assert stored.sentence_vectors == VectorModel.MINILM_STATIC and stored.summary()["sentence_vectors"] == "minilm-static"
    plain = list(build_pipeline(codebook, vectors=VectorModel.NONE).pipe(unseen))
    learned = stored.probabilities(plain)["money"]
    assert learned[0] > 0.5 > learned[1]
    assert learned == with_vectors.probabilities(list(nlp.pipe(unseen)))["money"]
    # Words alone do no better than the one-keyword rule (the training texts share hardly a word), so no model is kept.
    assert "money" not in without.models and "money" in without.judged
    assert with_vectors.models["money"].cv_kappa > without.judged["money"].model_kappa


def test_cold_codes_are_ranked_by_their_codebook_text(table, tmp_path):
    codebook = parse_codebook(
        "codes:\n  - id: staffing\n    label: Staffing\n    description: Recruiting and keeping staff; people leaving.\n    manual: true\n"
        "  - id: weather\n    label: Weather\n    description: Rain, storms and the climate.\n    manual: true\n"
    )
    texts = ["Two of our employees resigned and we could not recruit anyone.", "The storm flooded the car park.", "We met on Tuesday."]
    matrix = np.vstack([table.text_vector(text) for text in texts])
    ranks = cold_similarity(list(codebook.codes.values()), matrix, VectorModel.MINILM_STATIC)
    assert ranks["staffing"].index(1.0) == 0 and ranks["weather"].index(1.0) == 1
    # In a project: codes without any rules still order the review, by what the codebook says of them.
    write(tmp_path / "codebook.yaml", codebook.text)
    write(tmp_path / "transcripts" / "lead-01.txt", "".join(f"Interviewer: Q?\n\nRespondent: {text}\n\n" for text in texts))
    call(code, tmp_path)
    with Project.open(tmp_path) as opened:
        scores = uncertainty_scores(opened, texts)
    assert scores[2] < min(scores[0], scores[1])
    # Once a code has an example, its text no longer pulls segments forward: the models take over from there.
    with open_store(tmp_path) as store:
        first = store.codable_segments("lead-01")[0].id
        store.record([Entry(first, "staffing", "added"), Entry(first, None, "reviewed")], coder="ann")
    with Project.open(tmp_path) as opened:
        after = uncertainty_scores(opened, texts)
    assert after[1] == scores[1] and after[0] < scores[0]
    write(tmp_path / "qualcode.yaml", "vectors: none\n")
    with Project.open(tmp_path) as opened:
        assert uncertainty_scores(opened, texts) == [0.0, 0.0, 0.0]  # no rules, no models, no vectors: nothing to go by


# -- the vector cache and context (the question, the answer before) ----------------------------------------------

TIME_QUESTIONS = ["Did the timescale slow things down?", "Was the deadline too tight?", "How long did the decisions take?",
                  "Were you given enough time to apply?", "Did the schedule slip?", "Was the timetable realistic?",
                  "How quickly did the partnership start?", "Did the waiting hold you back?"]
MONEY_QUESTIONS = ["Was the funding enough?", "How did the budget work out?", "Who paid for the staff?",
                   "Did the grant cover your costs?", "Were the finances sound?", "How much money did you get?",
                   "Was the contract value fair?", "Did donations help?"]
ANSWERS = ["Yes, very much so.", "It really was, yes.", "I would say so.", "Absolutely, without a doubt.",
           "Not really, no.", "Hard to say.", "Somewhat, I suppose.", "That is right.", "Oh, certainly.", "Mostly, yes.",
           "I think so, on the whole.", "No, not at all.", "A little, maybe.", "Definitely.", "I am not sure.", "Quite a lot."]


def interview(pairs) -> str:
    return "".join(f"Interviewer: {question}\n\nRespondent: {answer}\n\n" for question, answer in pairs)


def test_neighbours_are_the_question_before_and_the_answer_before():
    from qualcode.ingest.segmenting import segment_text

    segments = segment_text("Notes taken by hand.\n\nInterviewer: Why?\n\nRespondent: First.\n\nRespondent: Second.\n\n"
                            "Interviewer: And then?\n\nRespondent: Third.\n")
    from qualcode.ingest.segmenting import neighbours

    found = neighbours(segments)
    texts = [segment.text for segment in segments]
    assert texts == ["Notes taken by hand.", "Why?", "First.", "Second.", "And then?", "Third."]
    assert found[2] == (1, None)  # the preamble asks nothing, and nothing was answered before
    assert found[3] == (1, 2) and found[5] == (4, 3)


def test_context_needs_vectors_and_is_checked_with_its_line(tmp_path):
    write(tmp_path / "qualcode.yaml", "vectors: none\ncontext: question\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(tmp_path)
    assert "qualcode.yaml:2: context:" in str(raised.value) and "'vectors' is none" in str(raised.value)
    write(tmp_path / "qualcode.yaml", "context: answers\n")
    with pytest.raises(SettingsError, match="unknown context 'answers'"):
        load_settings(tmp_path)
    write(tmp_path / "qualcode.yaml", "context: both\n")
    assert load_settings(tmp_path).context.question and load_settings(tmp_path).context.previous


def context_project(tmp_path, context: str):
    """Eight interviews whose answers say nothing by themselves: what they are about is in the question."""
    write(tmp_path / "codebook.yaml", "codes:\n  - id: timescale\n    label: Timescale\n    description: Delays and deadlines.\n"
                                      "    manual: true\n")
    write(tmp_path / "qualcode.yaml", f"context: {context}\nlearn_min_examples: 3\nretrain_after: 0\n")
    for number in range(8):
        pairs = [(TIME_QUESTIONS[number], ANSWERS[2 * number]), (MONEY_QUESTIONS[number], ANSWERS[2 * number + 1])]
        write(tmp_path / "transcripts" / f"lead-{number:02d}.txt", interview(pairs))
    # a topic guide asks the same questions in every interview
    write(tmp_path / "transcripts" / "new-01.txt", interview([("Was the deadline too tight?", "Indeed."),
                                                              ("Was the funding enough?", "Indeed.")]))
    call(code, tmp_path)
    with open_store(tmp_path) as store:
        for number in range(8):
            time_answer, money_answer = store.codable_segments(f"lead-{number:02d}")
            store.record([Entry(time_answer.id, "timescale", "added"), Entry(time_answer.id, None, "reviewed"),
                          Entry(money_answer.id, None, "reviewed")], coder="ann")


def new_scores(tmp_path, transcript_id: str = "new-01") -> tuple[list[float], list[float]]:
    """The model's scores for a stored interview's answers, read as re-scoring reads them, and as importing does."""
    from qualcode.ingest.transcripts import read_transcript
    from qualcode.run.planning import worker_spec
    from qualcode.suggest.spec import codable_inputs
    from qualcode.suggest.vector_cache import stored_docs

    with Project.open(tmp_path) as opened:
        spec, _version = worker_spec(opened, opened.store)
        models, nlp = spec.models(), spec.nlp()
        rows = opened.store.codable_segments(transcript_id)
        stored = list(nlp.pipe(stored_docs(opened.store, nlp, opened.settings, [row.id for row in rows], [row.text for row in rows])))
        transcript = read_transcript(tmp_path / "transcripts" / f"{transcript_id}.txt", opened.settings.segment_options)
        imported = list(nlp.pipe(codable_inputs(spec, transcript)))
        return models.probabilities(stored)["timescale"], models.probabilities(imported)["timescale"]


def test_the_question_teaches_what_an_answer_alone_cannot(tmp_path):
    from qualcode.suggest.training import train

    context_project(tmp_path, "question")
    result = call(train, tmp_path)
    assert "timescale" in result.models and result.models["timescale"]["cv_kappa"] > 0.5
    # The same word, "Indeed.", scored for the question it answers: higher after the deadline than after the funding.
    stored, imported = new_scores(tmp_path)
    assert stored[0] > stored[1] + 0.1
    # Importing reads the questions as re-scoring does: the worker's Docs score the same.
    assert imported == pytest.approx(stored, abs=1e-9)


def test_without_context_the_answers_alone_teach_no_model_that_may_speak(tmp_path):
    from qualcode.suggest.training import train

    context_project(tmp_path, "none")
    result = call(train, tmp_path)
    # "Yes.", "Indeed.": the answers alone hardly tell the code, so the model does not earn its place (issue 22), where
    # the same decisions with the question beside each answer do (test_the_question_teaches_what_an_answer_alone_cannot).
    assert "timescale" not in result.models and "timescale" in result.held_back
    with open_store(tmp_path) as store:
        assert [row for row in store.suggestions() if row.code == "timescale"] == []


def test_vectors_are_cached_by_text_and_model_and_a_bad_row_is_computed_again(tmp_path, backend):
    from qualcode.suggest.training import train
    from qualcode.suggest.vectors import text_key, vector_bytes

    context_project(tmp_path, "both")
    call(train, tmp_path)
    table = load_vectors(VectorModel.MINILM_STATIC)
    with open_store(tmp_path) as store:
        texts = {row.text for transcript in store.transcripts() for row in store.segments(transcript)}
        cached = store.cached_vectors(table.model_id, [text_key(text) for text in texts])
        # every segment trained on or re-scored, and every question before one, is filed once per text
        assert len(cached) == len(texts)  # 33 texts in 36 segments: new-01 repeats two questions and one answer
        nlp = build_pipeline(parse_codebook(CODEBOOK), vectors=VectorModel.NONE)
        answer = "Yes, very much so."
        assert cached[text_key(answer)] == vector_bytes(table.doc_vector(nlp.make_doc(answer)))
        store.save_vectors(table.model_id, [(text_key(answer), b"\x00" * 7), ("0" * 32, b"stale")])
    call(train, tmp_path)
    with open_store(tmp_path) as store:
        again = store.cached_vectors(table.model_id, [text_key(answer), "0" * 32])
    assert again == {text_key(answer): cached[text_key(answer)]}  # recomputed and filed again; the stray row pruned
