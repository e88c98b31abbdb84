"""The spaCy pipeline that suggests codes: building it, naming its version, reading its results.

spaCy is imported only when a pipeline is built, so commands that never read text start
without it. The component itself lives in ``components.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualcode import __version__
from qualcode.codebook import Codebook
from qualcode.errors import PipelineError
from qualcode.settings import Settings
from qualcode.suggest.rules import NORM_FREE_TOKENIZER, RULES_VERSION, SPANS_KEY, VECTORS_COMPONENT
from qualcode.suggestion import Evidence, Suggestion
from qualcode.vocabulary import Source, VectorModel

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc


def pipeline_version(codebook: Codebook, pipeline_name: str | None) -> str:
    """Identifies what produced a suggestion; a change means suggestions are recomputed."""
    return f"qualcode-{__version__}/{RULES_VERSION}/{pipeline_name or 'blank'}/{codebook.fingerprint}"


LONG_CHUNK = 64  # characters without a space, from which a chunk's punctuation is spaced out
PIECE = 24  # the most characters between two breaks put into such a chunk
_CHUNK = re.compile(r"\S{%d,}" % LONG_CHUNK)


def bounded(text: str) -> str:
    """The text with its long spaceless runs broken by spaces where they have punctuation, the same length (so offsets
    hold): spaCy's tokenizer strips affixes one character at a time, so a run of '?!' or '(((' costs the square of its
    length, four seconds for 4,000 characters. A run is broken at a punctuation character once ``PIECE`` characters have
    passed since the last break; words (letters and digits) are never touched, so the rules and the models read the
    same words."""
    if len(text) < LONG_CHUNK or not _may_have_long_chunk(text) or not _CHUNK.search(text):
        return text

    def spaced(match: re.Match) -> str:
        chunk = list(match.group(0))
        since = 0
        for index, char in enumerate(chunk):
            since += 1
            if since > PIECE and not char.isalnum():
                chunk[index] = " "
                since = 0
        return "".join(chunk)

    return _CHUNK.sub(spaced, text)


def _may_have_long_chunk(text: str) -> bool:
    """False when every run without a space is shorter than ``LONG_CHUNK``, found faster than ``_CHUNK`` can (a tenth
    of a second per million words): such a run holds a whole aligned block of half its length, which then has no
    space."""
    block = LONG_CHUNK // 2
    return not all(" " in text[start : start + block] for start in range(0, len(text) - block + 1, block))


class BoundedTokenizer:
    """spaCy's tokenizer, given ``bounded`` text: the work per segment grows with its length, whatever its characters."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> "Doc":
        return self.tokenizer(bounded(text))

    def pipe(self, texts: Any, batch_size: int = 1000) -> Any:
        for text in texts:
            yield self(text)

    def __getattr__(self, name: str) -> Any:  # vocab, rules, to_bytes...: the wrapped tokenizer's
        return getattr(self.tokenizer, name)


def _not_a_pipeline(name: str) -> str | None:
    """Why ``name`` is not a trained spaCy pipeline, checked without importing anything (``spacy.load`` imports any
    package it is given, and calls its ``load``): None when it is a package shipping spaCy's meta.json, or a folder
    holding a config.cfg."""
    import importlib.util

    if "/" in name or "\\" in name or name.startswith((".", "~")):
        folder = Path(name).expanduser()
        return None if (folder / "config.cfg").is_file() else "no config.cfg in that folder"
    if not name.isidentifier():
        return "not a package name"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None  # not installed: spacy.load says so, with the install fix
    if not any((Path(location) / "meta.json").is_file() for location in spec.submodule_search_locations or ()):
        return "an installed Python package without spaCy's meta.json"
    return None


def lemma_table(language: str) -> dict[str, str]:
    """spacy-lookups-data's lookup lemmas for ``language`` (word -> lemma), as its file has them: spaCy's own ``Table``
    hashes every key first, a tenth of a second of each process's start for English's 41,582 words, and the suggester
    looks each word up once anyway (``CodeSuggester._install_norms``). Where the file lists several lemmas for a word
    (French, Catalan), the first is taken."""
    from spacy.util import load_language_data, registry

    if language not in registry.lookups:
        raise ValueError(f"spacy-lookups-data has no tables for '{language}'")
    tables = registry.lookups.get(language)
    if "lemma_lookup" not in tables:
        raise ValueError(f"spacy-lookups-data has no lemma_lookup table for '{language}'")
    table = load_language_data(tables["lemma_lookup"])
    if not isinstance(table, dict):
        raise ValueError("its lemma_lookup table is not a table of words")
    words: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, list):  # French and Catalan list a word's lemmas: the first, as spaCy's lookup lemmatizer takes
            value = value[0] if value else None
        if isinstance(key, str) and isinstance(value, str):
            words[key] = value
    return words


def build_pipeline(
    codebook: Codebook, *, pipeline_name: str | None = None, language: str = "en", vectors: VectorModel = VectorModel.NONE
) -> "Language":
    """spacy.blank(language) and the suggester, which lemmatises by looking words up in spacy-lookups-data's table
    itself (spaCy's lemmatizer component would cost as much again as tokenising); or an installed trained pipeline,
    whose own lemmatizer the suggester then reads. With ``vectors``, ``qualcode_vectors`` runs before the suggester."""
    import spacy

    import qualcode.suggest.components  # noqa: F401  (registers the qualcode_suggester factory)

    if pipeline_name:
        problem = _not_a_pipeline(pipeline_name)
        if problem is not None:
            raise PipelineError(f"'{pipeline_name}' is not a spaCy pipeline ({problem})", path="qualcode.yaml", key_path="pipeline",
                                fix="name a trained pipeline package such as en_core_web_sm (python -m spacy download en_core_web_sm), "
                                    "or a folder saved with nlp.to_disk, or remove 'pipeline' to use the built-in lemmatizer")
        try:
            nlp = spacy.load(pipeline_name, exclude=["ner", "parser", "textcat", "entity_linker"])
        except (ValueError, ImportError, KeyError, AttributeError, TypeError) as exc:  # a damaged or incompatible package
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PipelineError(f"spaCy cannot load pipeline '{pipeline_name}' ({first[:300]})", path="qualcode.yaml", key_path="pipeline",
                                fix="reinstall it for this spaCy version (python -m spacy validate says which), or remove 'pipeline'") from None
        except OSError:
            raise PipelineError(
                f"spaCy pipeline '{pipeline_name}' is not installed",
                path="qualcode.yaml",
                key_path="pipeline",
                fix=f"install it into qualcode's environment (pip install {pipeline_name}) or remove 'pipeline' to use the built-in lemmatizer",
            ) from None
    else:
        try:
            rule_based = spacy.util.get_lang_class(language).default_config["nlp"]["tokenizer"].get("@tokenizers") == "spacy.Tokenizer.v1"
            # spaCy's rule-based tokenizer, its exceptions without norms of their own (the suggester's norms are the
            # words'); a language with a tokenizer of another kind keeps it
            nlp = spacy.blank(language, config={"nlp": {"tokenizer": {"@tokenizers": NORM_FREE_TOKENIZER}}} if rule_based else {})
        except (ImportError, KeyError, ValueError):
            raise PipelineError(
                f"spaCy has no language '{language}'",
                path="qualcode.yaml",
                key_path="language",
                fix="use a spaCy language code such as en, de, fr",
            ) from None
        try:
            lemmas = lemma_table(language)
        except (ValueError, OSError, KeyError) as exc:
            raise PipelineError(
                f"no lookup lemmatizer data for '{language}' ({str(exc).splitlines()[0]})",
                path="qualcode.yaml",
                key_path="language",
                fix="install spacy-lookups-data, or name a trained pipeline under 'pipeline'",
            ) from None
    if vectors != VectorModel.NONE:
        import qualcode.suggest.vectors  # noqa: F401  (registers the qualcode_vectors factory)

        nlp.add_pipe(VECTORS_COMPONENT, config={"model": vectors.value}, last=True)
    if not isinstance(nlp.tokenizer, BoundedTokenizer):
        nlp.tokenizer = BoundedTokenizer(nlp.tokenizer)
    suggester: Any = nlp.add_pipe("qualcode_suggester", last=True)
    suggester.set_codebook(codebook, lemmas=None if pipeline_name else lemmas)
    return nlp


def validate_codebook(codebook: Codebook, settings: Settings) -> None:
    """Every check `qualcode code` makes of a codebook, token patterns included (only spaCy's Matcher can check those)."""
    if any(code.patterns for code in codebook.codes.values()):
        build_pipeline(codebook, pipeline_name=settings.pipeline, language=settings.language)  # vectors cannot make a codebook fail


def suggestions_from_doc(doc: "Doc", spans_key: str = SPANS_KEY) -> list[Suggestion]:
    """The suggestions a component wrote to ``doc.spans[spans_key]``: one per code of the group's ``confidence``
    attribute, in the order of the group's spans (the components write a code's span, confidence and evidence together,
    so the spans themselves need not be read)."""
    group = doc.spans[spans_key] if spans_key in doc.spans else None
    if group is None:
        return []
    attrs = group.attrs
    confidence = attrs.get("confidence")
    if not confidence:
        return []
    evidence = attrs.get("evidence", {})
    source = attrs.get("source", Source.RULES.value)
    return [
        Suggestion(code, value, [Evidence(item["term"], item["kind"], item["start"], item["end"], item.get("negated", False))
                                 for item in evidence.get(code, ())], source)
        for code, value in confidence.items()
    ]
