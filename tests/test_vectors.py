"""Sentence vectors (issue 13): the shipped static table, the spaCy component, the setting, the models and cold codes."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from conftest import call, open_store, write

from qualcode.codebook import parse_codebook
from qualcode.coding import code
from qualcode.errors import SettingsError
from qualcode.model import ModelSet, fit_models
from qualcode.ordering import cold_similarity, uncertainty_scores
from qualcode.pipeline import build_pipeline
from qualcode.project import Project
from qualcode.settings import load_settings
from qualcode.store import Entry
from qualcode.vectors import DATA, EXTENSION, load_vectors
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
    assert "money" not in without.models and "money" in without.rules_better
    assert with_vectors.models["money"].cv_kappa > without.rules_better["money"][1]


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
