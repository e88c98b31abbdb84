from __future__ import annotations

import pytest
import spacy
from conftest import SMALL_CODEBOOK
from spacy.language import Language

from qualcode.codebook import parse_codebook
from qualcode.errors import PipelineError
from qualcode.suggest.model import suggest
from qualcode.suggest.pipeline import build_pipeline, suggestions_from_doc
from qualcode.suggest.rules import rule_confidence
from qualcode.suggestion import Evidence


@pytest.fixture(scope="module")
def nlp():
    return build_pipeline(parse_codebook(SMALL_CODEBOOK))


def test_component_is_registered_and_pipeline_is_blank_english_with_lookup_lemmas(nlp):
    assert Language.has_factory("qualcode_suggester")
    assert nlp.pipe_names == ["qualcode_suggester"]  # the suggester looks lemmas up itself
    assert nlp.meta["name"] == "pipeline"  # spacy.blank, nothing downloaded
    doc = nlp("Deadlines were RUSHED")
    assert [token.norm_ for token in doc] == ["deadline", "be", "rush"]  # NORM is the lower-cased looked-up lemma


def test_suggestions_are_written_to_doc_spans_with_evidence_offsets(nlp):
    text = "DEADLINES everywhere, and we were Rushing. Not enough time!"
    doc = nlp(text)
    group = doc.spans["qualcode"]
    assert [span.label_ for span in group] == ["timescale"]
    assert group[0].text == "DEADLINES everywhere, and we were Rushing. Not enough time"
    evidence = group.attrs["evidence"]["timescale"]
    assert [(item["term"], item["kind"], text[item["start"] : item["end"]]) for item in evidence] == [
        ("deadline", "keyword", "DEADLINES"),
        ("rush", "keyword", "Rushing"),
        ("not enough time", "phrase", "Not enough time"),
    ]
    assert [span.text for span in doc.spans["qualcode_evidence"]] == ["DEADLINES", "Rushing", "Not enough time"]
    assert group.attrs["confidence"]["timescale"] == rule_confidence([Evidence(**item) for item in evidence])


def test_token_patterns_and_inflected_phrases(nlp):
    [suggestion] = suggestions_from_doc(nlp("When the funding ends, who will pay?"))
    assert suggestion.code == "sustainability"
    assert [(e.term, e.kind) for e in suggestion.evidence] == [
        ("when the funding end", "phrase"),
        ("who will pay", "pattern"),
    ]
    assert suggestion.source == "rules"
    assert suggestion.reason() == "rules: 'when the funding end', 'who will pay'"


def test_no_evidence_no_suggestion(nlp):
    assert suggestions_from_doc(nlp("We are a housing association.")) == []
    assert suggestions_from_doc(nlp("")) == []


def test_confidence_grows_with_distinct_evidence_and_stays_in_unit_interval():
    keyword = Evidence("deadline", "keyword", 0, 8)
    phrase = Evidence("short timescale", "phrase", 10, 25)
    assert rule_confidence([keyword]) == 0.381
    assert rule_confidence([phrase]) == 0.551
    assert rule_confidence([keyword, phrase]) > rule_confidence([phrase]) > rule_confidence([keyword])
    repeated = [Evidence("deadline", "keyword", i, i + 8) for i in range(0, 100, 10)]
    assert rule_confidence([keyword]) < rule_confidence(repeated) < rule_confidence([keyword, phrase])
    assert 0 <= rule_confidence([phrase] * 50) <= 1


def test_negated_mentions_are_flagged_and_weigh_less(nlp):
    [plain] = suggestions_from_doc(nlp("The deadline was hard."))
    [negated] = suggestions_from_doc(nlp("There was no deadline at all."))
    assert negated.evidence[0].negated and not plain.evidence[0].negated
    assert negated.confidence < plain.confidence
    assert "(negated)" in negated.reason()


def test_nested_match_counts_once(nlp):
    [suggestion] = suggestions_from_doc(nlp("It was a short timescale."))
    assert [e.term for e in suggestion.evidence] == ["short timescale"]


def test_suggest_processes_batches_in_order(nlp):
    texts = ["nothing here", "deadline", "we will mainstream it"] * 200
    results = suggest(nlp, texts, batch_size=64)
    assert len(results) == 600
    assert [[s.code for s in r] for r in results[:3]] == [[], ["timescale"], ["sustainability"]]
    assert suggest(nlp, texts[:3], min_confidence=0.5) == [[], [], []]


def test_named_pipeline_that_is_not_installed_is_a_clear_error():
    with pytest.raises(PipelineError) as raised:
        build_pipeline(parse_codebook(SMALL_CODEBOOK), pipeline_name="en_core_web_nonexistent")
    assert str(raised.value) == (
        "qualcode.yaml: pipeline: spaCy pipeline 'en_core_web_nonexistent' is not installed. "
        "Fix: install it into qualcode's environment (pip install en_core_web_nonexistent) "
        "or remove 'pipeline' to use the built-in lemmatizer"
    )


def test_trained_pipeline_path_uses_its_own_lemmas(tmp_path):
    # A pipeline saved to disk stands in for an installed trained package.
    trained = spacy.blank("en")
    trained.add_pipe("lemmatizer", config={"mode": "lookup"})
    trained.initialize()
    trained.to_disk(tmp_path / "trained")
    nlp = build_pipeline(parse_codebook(SMALL_CODEBOOK), pipeline_name=str(tmp_path / "trained"))
    assert [s.code for s in suggestions_from_doc(nlp("deadlines"))] == ["timescale"]


GATE_CODEBOOK = """\
codes:
  - id: a
    patterns:
      - [{LOWER: very}, {ORTH: Tight, OP: "?"}, {NORM: {IN: [deadline, timescale]}}]
      - [{NORM: who}, {IS_PUNCT: false, OP: "{0,3}"}, {NORM: {IN: [pay, fund]}}]
      - [{TEXT: {REGEX: "^[Ff]und"}}, {NORM: {IN: [end, finish]}}]
      - [{NORM: time, OP: "+"}, {LEMMA: {NOT_IN: [x]}}, {NORM: short}]
      - [{ORTH: NHS}, {NORM: board, OP: "*"}, {LOWER: {IN: [budget, money]}}]
"""


@pytest.mark.parametrize(
    "text, matched",
    [
        ("A very Tight deadline.", True),
        ("a VERY timescale", True),
        ("Who is going to pay? who will fund", True),
        ("Funding ends; funds finish.", True),
        ("time time is short", True),
        ("The NHS board board money, NHS budget, nhs money", True),
        ("nothing relevant here at all", False),
        ("very tight, and who knows", False),
        (" ".join(["filler"] * 300) + " who will pay " + " ".join(["more"] * 300) + " very deadline " + "x " * 50 + "who pay", True),
    ],
)
def test_gated_patterns_find_exactly_what_the_full_matcher_finds(text, matched):
    nlp = build_pipeline(parse_codebook(GATE_CODEBOOK))
    suggester = nlp.get_pipe("qualcode_suggester")
    doc = nlp(text)
    full = sorted(suggester.matcher(doc))
    suggester._set_norms(doc)
    gated = sorted(suggester.pattern_matches(doc, suggester.phrase_matches(doc)[1]))
    assert gated == full
    assert bool(full) is matched
    assert bool(doc.spans["qualcode"]) is matched


@pytest.mark.parametrize("text", [
    "Don't you think we're gonna miss the deadlines? I can't; we couldn't've. 'Cause it's Dec. and Calif. isn't done.",
    "THE Funding ENDED, doesn't it? Ain't nobody paying; y'all know what's what.",
])
def test_every_token_norm_is_its_lower_cased_forms_looked_up_lemma(nlp, text):
    """Issue 28: the lemmas are a word's attribute (looked up once per word, when the vocabulary first meets it), so the
    tokenizer's exceptions must not keep norms of their own ("n't" -> "not", "Dec." -> "December"): every token's NORM
    is the lookup table's lemma of its lower-cased form, as when it was written token by token."""
    from spacy.attrs import NORM

    from qualcode.suggest.pipeline import lemma_table

    table = lemma_table("en")
    doc = nlp(text)
    assert len(doc) >= 20
    assert [token.norm_ for token in doc] == [table.get(token.lower_, token.lower_) for token in doc]
    tokenizer = nlp.tokenizer.tokenizer
    assert not any(NORM in token or "NORM" in token for tokens in tokenizer.rules.values() for token in tokens)


def test_a_language_without_lookup_lemmas_is_a_located_error():
    with pytest.raises(PipelineError) as raised:
        build_pipeline(parse_codebook(SMALL_CODEBOOK), language="xx")
    assert "no lookup lemmatizer data for 'xx'" in raised.value.message
    assert raised.value.key_path == "language"


def test_a_coding_run_gives_back_the_garbage_collector_as_it_found_it(small_project):
    """Issue 28: `code` sets Python's collector aside while it reads files (``_few_collections``); a program calling the
    library gets its own settings back."""
    import gc

    from qualcode.project import Project
    from qualcode.run.coding import code

    before = gc.get_threshold()
    gc.set_threshold(1234, 11, 12)
    try:
        with Project.open(small_project) as project:
            assert code(project).imported
        assert gc.get_threshold() == (1234, 11, 12)
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)


def test_french_lemmas_listed_several_to_a_word_take_the_first():
    """spacy-lookups-data lists French (and Catalan) lemmas as lists: the first is the word's lemma, as spaCy's own
    lookup lemmatizer takes it (before issue 28 the suggester failed on the first French word)."""
    codebook = parse_codebook("codes:\n  - id: delais\n    keywords: [délai]\n  - id: etat\n    phrases: [\"n'était pas tenu\"]\n")
    nlp = build_pipeline(codebook, language="fr")
    doc = nlp("Les délais n'étaient pas tenus.")
    assert [token.norm_ for token in doc][:6] == ["le", "délai", "ne", "être", "pas", "tenu"]
    assert [suggestion.code for suggestion in suggestions_from_doc(doc)] == ["delais", "etat"]


NEGATION_TEXTS = [
    "The deadline came. There was no deadline. It wasn't a deadline, never a tight deadline; without funding, nobody, hardly any time.",
    "A deadline. Not the deadline! NO timescale, None of the funding ended; neither money nor deadline. Nothing rushed at all",
    "deadline no no no deadline, n't deadline; Don't rush. We couldn't've met the deadline",
]


@pytest.mark.parametrize("text", NEGATION_TEXTS)
def test_negation_is_any_negating_word_among_the_three_tokens_before_a_match(nlp, text):
    """Issue 28: the phrase matchers find the negation words (by NORM, or by LOWER where a word's lemma is not one), so
    no Doc is read into arrays: a match is negated when a token among the NEGATION_WINDOW before it has a NORM or a
    LOWER that is one of NEGATIONS, as when each token was read."""
    from qualcode.suggest.rules import NEGATION_WINDOW, NEGATIONS

    doc = nlp(text)
    evidence = [item for suggestion in suggestions_from_doc(doc) for item in suggestion.evidence]
    assert evidence and any(item.negated for item in evidence) and not all(item.negated for item in evidence)
    for item in evidence:
        start = doc.char_span(item.start, item.end).start
        window = doc[max(0, start - NEGATION_WINDOW) : start]
        assert item.negated == any(token.norm_ in NEGATIONS or token.lower_ in NEGATIONS for token in window), (item, text)


def test_lemma_in_a_token_pattern_reads_the_looked_up_lemma():
    """Issue 28: with the built-in lookup the lemma is the NORM, which every word already has, so a pattern naming
    LEMMA is read as NORM and no Doc has LEMMA written; a token naming both keeps LEMMA, which is then written."""
    codebook = parse_codebook("""\
codes:
  - id: lemma
    patterns:
      - [{LEMMA: be}, {LEMMA: {IN: [hard, short]}}]
      - [{LEMMA: {REGEX: "^fund"}}, {NORM: end}]
  - id: norm
    patterns:
      - [{NORM: be}, {NORM: {IN: [hard, short]}}]
      - [{NORM: {REGEX: "^fund"}}, {NORM: end}]
  - id: both
    patterns:
      - [{LEMMA: deadline, NORM: deadline}, {LEMMA: be}]
""")
    nlp = build_pipeline(codebook)
    text = "Time WAS short and it is hard. The funds ended, Funding ends. Deadlines were tight."
    found = {suggestion.code: [(item.start, item.end) for item in suggestion.evidence] for suggestion in suggestions_from_doc(nlp(text))}
    assert found["lemma"] == found["norm"] and len(found["lemma"]) == 4
    assert [text[start:end] for start, end in found["both"]] == ["Deadlines were"]
    assert nlp.get_pipe("qualcode_suggester")._writes_lemma
    plain = build_pipeline(parse_codebook("codes:\n  - id: lemma\n    patterns:\n      - [{LEMMA: be}, {LEMMA: short}]\n"))
    doc = plain("Time was short")
    assert [token.lemma_ for token in doc] == ["", "", ""] and suggestions_from_doc(doc)
    assert not plain.get_pipe("qualcode_suggester")._writes_lemma


def test_a_pattern_is_tried_only_on_docs_with_its_key_words():
    """Issue 28: a pattern's key token is its first required token without a stop word ("who" and "for" are in most
    docs, "pay" is not): docs without those words never reach the pattern's matcher, which finds the same matches."""
    nlp = build_pipeline(parse_codebook(GATE_CODEBOOK))
    suggester = nlp.get_pipe("qualcode_suggester")
    who_pays = 1
    keyed = {nlp.vocab.strings[match_id].rsplit("\x1f", 1)[-1] for match_id, patterns in suggester._patterns_by_gate.items()
             if who_pays in patterns}
    assert {nlp.vocab.strings[int(key)] for key in keyed} == {"pay", "fund"}
    doc = nlp.make_doc("Who knows who we are, and who is going where?")
    matches, hits = suggester.phrase_matches(doc)
    assert suggester.pattern_matches(doc, hits) == [] == sorted(suggester.matcher(doc))
