"""The spaCy pipeline that suggests codes for segments from the codebook's rules.

``qualcode_suggester`` is a pipeline component registered with ``Language.factory``.
It matches the codebook's keywords and phrases on case-insensitive lemmas (written
to ``token.norm``) and its token patterns with spaCy's Matcher, then writes:

* ``doc.spans["qualcode"]``: one span per suggested code (label = code id), from the
  first to the last piece of evidence; the group's ``attrs`` hold each code's
  ``confidence`` and ``evidence``;
* ``doc.spans["qualcode_evidence"]``: one span per matched term (label = code id).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from qualcode import __version__
from qualcode.codebook import Codebook
from qualcode.errors import CodebookError, PipelineError

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

RULES_VERSION = "rules-1"
SPANS_KEY = "qualcode"
EVIDENCE_KEY = "qualcode_evidence"
KIND_WEIGHTS = {"phrase": 1.0, "pattern": 1.0, "keyword": 0.6}
REPEAT_WEIGHT = 0.2
MAX_REPEAT_BONUS = 0.4
NEGATED_FACTOR = 0.8
CONFIDENCE_SCALE = 0.8
NEGATIONS = frozenset({"not", "no", "never", "n't", "nothing", "without", "hardly", "nobody", "neither", "nor", "none"})
NEGATION_WINDOW = 3


@dataclass
class Evidence:
    term: str
    kind: str
    start: int
    end: int
    negated: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"term": self.term, "kind": self.kind, "start": self.start, "end": self.end}
        if self.negated:
            data["negated"] = True
        return data


@dataclass
class Suggestion:
    code: str
    confidence: float
    evidence: list[Evidence] = field(default_factory=list)
    source: str = "rules"

    def reason(self, text: str | None = None) -> str:
        """What stands behind the suggestion: its source and the rules that fired.

        Given the segment's ``text``, a token pattern is shown by the words it matched.
        """
        terms: list[str] = []
        for item in self.evidence:
            shown = text[item.start : item.end] if text is not None and item.kind == "pattern" else item.term
            label = f"'{shown}'" + (" (negated)" if item.negated else "")
            if label not in terms:
                terms.append(label)
        return f"{self.source}: {', '.join(terms)}" if terms else self.source


def rule_confidence(evidence: Sequence[Evidence]) -> float:
    """Confidence from the evidence: distinct terms weigh by kind, repeats add a little.

    One keyword gives 0.38, a phrase 0.55, two keywords 0.62, a phrase and a keyword 0.72.
    """
    best: dict[tuple[str, str], float] = {}
    repeats: dict[tuple[str, str], int] = {}
    for item in evidence:
        key = (item.kind, item.term)
        weight = KIND_WEIGHTS[item.kind] * (NEGATED_FACTOR if item.negated else 1.0)
        if key in best:
            repeats[key] = repeats.get(key, 0) + 1
        best[key] = max(best.get(key, 0.0), weight)
    score = sum(best.values()) + min(MAX_REPEAT_BONUS, REPEAT_WEIGHT * sum(repeats.values()))
    return round(1.0 - math.exp(-CONFIDENCE_SCALE * score), 3)


class CodeSuggester:
    """Matches codebook rules in a Doc and writes suggestions to ``doc.spans``."""

    def __init__(self, nlp: "Language", name: str, spans_key: str, evidence_key: str) -> None:
        from spacy.matcher import Matcher, PhraseMatcher

        self.nlp = nlp
        self.name = name
        self.spans_key = spans_key
        self.evidence_key = evidence_key
        self.vocab = nlp.vocab
        self.phrase_matcher = PhraseMatcher(nlp.vocab, attr="NORM")
        self.matcher = Matcher(nlp.vocab, validate=True)
        # One matcher per token pattern, run only on docs holding all of its required words.
        self.gated_patterns: list[tuple[list[tuple[str, frozenset[int]]], Any]] = []
        self.rules: dict[int, tuple[str, str, str]] = {}
        self.codebook_fingerprint = ""
        self._norms: dict[int, int] = {}
        self._lookup: Any = None
        self._negations = {nlp.vocab.strings.add(word) for word in NEGATIONS}

    # -- set-up -------------------------------------------------------------------

    def set_codebook(self, codebook: Codebook) -> None:
        from spacy.errors import MatchPatternError
        from spacy.matcher import Matcher

        self._lookup = _lookup_table(self.nlp)
        for code in codebook.suggestible():
            seen: set[tuple[str, ...]] = set()
            for kind, terms in (("phrase", code.phrases), ("keyword", code.keywords)):
                for term in terms:
                    doc = self._pattern_doc(term)
                    norms = tuple(token.norm_ for token in doc)
                    if norms in seen:  # "nobody knew" and "nobody know" are one rule after lemmatising
                        continue
                    seen.add(norms)
                    self.phrase_matcher.add(self._rule_key(code.id, kind, term), [doc])
            for index, pattern in enumerate(code.patterns):
                key = self._rule_key(code.id, "pattern", _pattern_text(pattern))
                try:
                    self.matcher.add(key, [pattern])
                    matcher = Matcher(self.vocab)
                    matcher.add(key, [pattern])
                    self.gated_patterns.append((self._requirements(pattern), matcher))
                except (MatchPatternError, ValueError, TypeError, KeyError) as exc:
                    line = code.pattern_lines[index] if index < len(code.pattern_lines) else code.line
                    first = str(exc).strip().splitlines()
                    raise CodebookError(
                        f"invalid token pattern for '{code.id}': {' '.join(first[-3:]) if first else exc}",
                        path=codebook.path,
                        line=line,
                        key_path=f"{code.key_path}.patterns[{index}]",
                        fix="use spaCy Matcher keys such as LOWER, LEMMA, NORM, IS_DIGIT, OP",
                    ) from None
        self.codebook_fingerprint = codebook.fingerprint

    def _requirements(self, pattern: list[dict[str, Any]]) -> list[tuple[str, frozenset[int]]]:
        """For each token the pattern cannot match without, the words (NORM or LOWER ids) it accepts.

        Optional tokens and constraints other than exact values or IN lists are left out,
        so the check only ever skips docs the pattern could not match.
        """
        required = []
        for token in pattern:
            op = str(token.get("OP", ""))
            if op in ("?", "*", "!") or (op.startswith("{") and op[1:].split(",")[0].strip() in ("", "0")):
                continue
            for key, value in token.items():
                name = str(key).upper()
                if name not in ("NORM", "LOWER", "ORTH", "TEXT"):
                    continue
                if isinstance(value, str):
                    words = [value]
                elif isinstance(value, dict) and list(value) == ["IN"] and all(isinstance(item, str) for item in value["IN"]):
                    words = value["IN"]
                else:
                    continue
                attr = "NORM" if name == "NORM" else "LOWER"
                values = words if attr == "NORM" else [word.lower() for word in words]
                required.append((attr, frozenset(self.vocab.strings.add(word) for word in values)))
                break
        return required

    def _rule_key(self, code: str, kind: str, term: str) -> str:
        key = f"{code}\x1f{kind}\x1f{term}"
        self.rules[self.vocab.strings.add(key)] = (code, kind, term)
        return key

    def _pattern_doc(self, term: str) -> "Doc":
        doc = self.nlp.make_doc(term)
        if self._lookup is None:
            # A trained pipeline lemmatises with context: run it on the term too.
            for _name, proc in self.nlp.pipeline:
                if proc is not self:
                    doc = proc(doc)
        self._set_norms(doc)
        return doc

    # -- matching -----------------------------------------------------------------

    def _set_norms(self, doc: "Doc") -> tuple[list[int], list[int]]:
        """Write each token's lower-cased lemma to NORM, the attribute the PhraseMatcher reads.

        Returns the NORM and LOWER ids of the tokens.
        """
        import numpy
        from spacy.attrs import LOWER, NORM

        if not len(doc):
            return [], []
        strings = self.vocab.strings
        lowers = doc.to_array(LOWER).tolist()
        if self._lookup is not None:
            norms = self._norms
            lookup = self._lookup
            values = []
            for lower in lowers:
                norm = norms.get(lower)
                if norm is None:
                    # The table is keyed by string hashes, the same ids as LOWER.
                    lemma = lookup.get(lower)
                    norm = norms[lower] = strings.add(lemma) if lemma is not None else lower
                values.append(norm)
        else:
            values = [strings.add(token.lemma_.lower() or token.lower_) for token in doc]
        doc.from_array([NORM], numpy.array(values, dtype="uint64").reshape(-1, 1))
        return values, lowers

    def __call__(self, doc: "Doc") -> "Doc":
        from spacy.tokens import Span, SpanGroup

        norms, lowers = self._set_norms(doc)
        found: dict[str, list[tuple[Evidence, int, int]]] = {}
        matches = list(self.phrase_matcher(doc))
        if self.gated_patterns:
            present = {"NORM": set(norms), "LOWER": set(lowers)}
            for required, matcher in self.gated_patterns:
                if all(not present[attr].isdisjoint(words) for attr, words in required):
                    matches.extend(matcher(doc))
        for match_id, start, end in matches:
            code, kind, term = self.rules[match_id]
            negated = any(
                token.norm in self._negations or token.lower in self._negations
                for token in doc[max(0, start - NEGATION_WINDOW) : start]
            )
            span = doc[start:end]
            found.setdefault(code, []).append((Evidence(term, kind, span.start_char, span.end_char, negated), start, end))
        suggestions_spans = []
        evidence_spans = []
        confidence: dict[str, float] = {}
        evidence_json: dict[str, list[dict[str, Any]]] = {}
        for code, items in found.items():
            items = _drop_nested(items)
            items.sort(key=lambda item: (item[1], item[2]))
            evidence = [item[0] for item in items]
            confidence[code] = rule_confidence(evidence)
            evidence_json[code] = [item.to_json() for item in evidence]
            suggestions_spans.append(Span(doc, items[0][1], max(item[2] for item in items), label=code))
            evidence_spans.extend(Span(doc, start, end, label=code) for _e, start, end in items)
        doc.spans[self.spans_key] = SpanGroup(
            doc,
            name=self.spans_key,
            spans=suggestions_spans,
            attrs={"confidence": confidence, "evidence": evidence_json, "source": "rules"},
        )
        doc.spans[self.evidence_key] = SpanGroup(doc, name=self.evidence_key, spans=evidence_spans)
        return doc


def _drop_nested(items: list[tuple[Evidence, int, int]]) -> list[tuple[Evidence, int, int]]:
    """One rule per matched stretch of text (the heaviest kind), and no match inside a longer one
    of the same code ("deadline" inside "tight deadline"), so one mention counts once.

    A sweep in start order: O(n log n), because one long turn can hold thousands of matches.
    """
    best: dict[tuple[int, int], tuple[Evidence, int, int]] = {}
    for item in items:
        span = (item[1], item[2])
        if span not in best or KIND_WEIGHTS[item[0].kind] > KIND_WEIGHTS[best[span][0].kind]:
            best[span] = item
    kept = []
    furthest = -1
    for item in sorted(best.values(), key=lambda entry: (entry[1], -entry[2])):
        if item[2] <= furthest:
            continue  # inside an earlier, longer match: spans are unique, so it is strictly longer
        kept.append(item)
        furthest = item[2]
    return kept


def _pattern_text(pattern: list[dict[str, Any]]) -> str:
    """A readable form of a token pattern for evidence: {IN: [a, b]} -> a|b, any token -> _."""
    parts = []
    for token in pattern:
        values = []
        for key, value in token.items():
            if key == "OP":
                continue
            if isinstance(value, dict):
                options = value.get("IN") or value.get("REGEX") or next(iter(value.values()), "")
                value = "|".join(map(str, options)) if isinstance(options, list) else str(options)
            values.append(str(value).lower() if not isinstance(value, bool) else key.lower())
        parts.append("/".join(values) or "_")
        parts[-1] += token.get("OP", "")
    return " ".join(parts)


def _lookup_table(nlp: "Language") -> Any:
    """The lookup lemmatizer's table, so lemmas can be found for lower-cased words."""
    if "lemmatizer" not in nlp.pipe_names:
        return None
    lemmatizer = nlp.get_pipe("lemmatizer")
    if getattr(lemmatizer, "mode", None) != "lookup":
        return None
    return lemmatizer.lookups.get_table("lemma_lookup")


try:
    from spacy.language import Language as _Language

    @_Language.factory(
        "qualcode_suggester",
        default_config={"spans_key": SPANS_KEY, "evidence_key": EVIDENCE_KEY},
    )
    def make_code_suggester(nlp: "Language", name: str, spans_key: str, evidence_key: str) -> CodeSuggester:
        return CodeSuggester(nlp, name, spans_key, evidence_key)

except ImportError:  # pragma: no cover - spaCy is a hard dependency; this keeps import errors readable
    pass


def pipeline_version(codebook: Codebook, pipeline_name: str | None) -> str:
    """Identifies what produced a suggestion; a change means suggestions are recomputed."""
    return f"qualcode-{__version__}/{RULES_VERSION}/{pipeline_name or 'blank'}/{codebook.fingerprint}"


def build_pipeline(codebook: Codebook, *, pipeline_name: str | None = None, language: str = "en") -> "Language":
    """spacy.blank(language) with the lookup lemmatizer, or an installed trained pipeline."""
    import spacy

    if pipeline_name:
        try:
            nlp = spacy.load(pipeline_name, exclude=["ner", "parser", "textcat", "entity_linker"])
        except OSError:
            raise PipelineError(
                f"spaCy pipeline '{pipeline_name}' is not installed",
                path="qualcode.yaml",
                key_path="pipeline",
                fix=f"install it into qualcode's environment (pip install {pipeline_name}) or remove 'pipeline' to use the built-in lemmatizer",
            ) from None
    else:
        try:
            nlp = spacy.blank(language)
        except (ImportError, KeyError, ValueError):
            raise PipelineError(
                f"spaCy has no language '{language}'",
                path="qualcode.yaml",
                key_path="language",
                fix="use a spaCy language code such as en, de, fr",
            ) from None
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        try:
            nlp.initialize()
        except (ValueError, OSError) as exc:
            raise PipelineError(
                f"no lookup lemmatizer data for '{language}' ({str(exc).splitlines()[0]})",
                path="qualcode.yaml",
                key_path="language",
                fix="install spacy-lookups-data, or name a trained pipeline under 'pipeline'",
            ) from None
    suggester = nlp.add_pipe("qualcode_suggester", last=True)
    suggester.set_codebook(codebook)
    return nlp


def suggestions_from_doc(doc: "Doc", spans_key: str = SPANS_KEY) -> list[Suggestion]:
    group = doc.spans[spans_key] if spans_key in doc.spans else None
    if group is None:
        return []
    confidence = group.attrs.get("confidence", {})
    evidence = group.attrs.get("evidence", {})
    source = group.attrs.get("source", "rules")
    suggestions = []
    for span in group:
        code = span.label_
        suggestions.append(
            Suggestion(
                code=code,
                confidence=confidence[code],
                evidence=[Evidence(**item) for item in evidence.get(code, [])],
                source=source,
            )
        )
    return suggestions


def suggest(
    nlp: "Language", texts: Iterable[str], *, batch_size: int = 256, min_confidence: float = 0.0, models: Any = None
) -> list[list[Suggestion]]:
    """Suggestions for each text, in order, through ``nlp.pipe``; blended with learned models when given."""
    if models is not None:
        from qualcode.model import blend

        results: list[list[Suggestion]] = []
        batch: list = []
        # Docs are kept one batch at a time: a huge transcript must not hold all its Docs at once.
        for doc in nlp.pipe(texts, batch_size=batch_size):
            batch.append(doc)
            if len(batch) == batch_size:
                results.extend(blend(batch, models, min_confidence=min_confidence))
                batch = []
        results.extend(blend(batch, models, min_confidence=min_confidence))
        return results
    results = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        results.append([item for item in suggestions_from_doc(doc) if item.confidence >= min_confidence])
    return results
