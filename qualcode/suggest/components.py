"""The spaCy component that suggests codes from the codebook's rules.

``qualcode_suggester`` is registered with ``Language.factory`` when this module is
imported (``build_pipeline`` does so; nothing else needs spaCy). It matches the codebook's
keywords and phrases on case-insensitive lemmas (``token.norm``: with the built-in lookup
lemmas a word's NORM is its lemma, set once per word in the vocabulary) and its token
patterns with spaCy's Matcher, then writes:

* ``doc.spans["qualcode"]``: one span per suggested code (label = code id), from the
  first to the last piece of evidence; the group's ``attrs`` hold each code's
  ``confidence`` and ``evidence``;
* ``doc.spans["qualcode_evidence"]``: one span per matched term (label = code id).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable, Mapping

import numpy
from spacy.attrs import LEMMA, NORM
from spacy.errors import MatchPatternError
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc, Span, SpanGroup, Token
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex, registry

from qualcode.codebook import Codebook
from qualcode.errors import CodebookError, CodebookProblems
from qualcode.suggest.rules import (
    EVIDENCE_KEY,
    KIND_WEIGHTS,
    NEGATION_WINDOW,
    NEGATIONS,
    NORM_FREE_TOKENIZER,
    SPANS_KEY,
    VECTORS_COMPONENT,
    rule_confidence,
)
from qualcode.suggestion import Evidence
from qualcode.vocabulary import Source

PATTERN_FIX = "use spaCy Matcher keys such as LOWER, LEMMA, NORM, IS_DIGIT, OP"
REGEX_SECONDS = 0.05  # the most one REGEX may take on one word
REGEX_GIVE_UP = 20  # words it took that long on, after which a REGEX is no longer tried in this process
_REGEX_TIMEOUTS: dict[str, int] = {}
_NORM_KEYS = {NORM, "NORM", "norm"}
_NEGATION_KEY = "\x1fnegation"  # the phrase matchers' match id for a negation word


class BoundedRegex:
    """A token pattern's REGEX, run by the `regex` module with a time limit: whatever the pattern (nested repetition,
    backreferences, alternation spaCy's `re` would take exponential time over), one word costs at most
    ``REGEX_SECONDS``; a pattern that keeps hitting the limit is given up, and said (``regex_timeouts``)."""

    def __init__(self, pattern: str, attribute: str) -> None:
        import regex

        self.pattern, self.attribute = pattern, attribute
        self.compiled = regex.compile(pattern, flags=regex.VERSION0)

    def value(self, token: Any) -> str:
        name = self.attribute.upper()
        if name in ("TEXT", "ORTH"):
            return token.text
        return str(getattr(token, f"{name.lower()}_", token.text))

    def __call__(self, token: Any) -> bool:
        if _REGEX_TIMEOUTS.get(self.pattern, 0) >= REGEX_GIVE_UP:
            return False
        try:
            return self.compiled.search(self.value(token), timeout=REGEX_SECONDS) is not None
        except TimeoutError:
            _REGEX_TIMEOUTS[self.pattern] = _REGEX_TIMEOUTS.get(self.pattern, 0) + 1
            return False


def regex_timeouts() -> dict[str, int]:
    """The REGEXes that hit their time limit since last asked, with on how many words; forgotten once read."""
    found = dict(_REGEX_TIMEOUTS)
    _REGEX_TIMEOUTS.clear()
    return found


def bounded_regexes(pattern: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A token pattern whose REGEX predicates are custom attributes running ``BoundedRegex`` (same meaning, bounded time)."""
    import hashlib

    changed = []
    for token in pattern:
        spec = dict(token)
        extensions = dict(spec.get("_", {})) if isinstance(spec.get("_"), dict) else {}
        for key, value in list(spec.items()):
            if key == "_" or not isinstance(value, dict) or "REGEX" not in value or not isinstance(value["REGEX"], str):
                continue
            name = "qc_rx_" + hashlib.blake2b(f"{key}\x00{value['REGEX']}".encode(), digest_size=8).hexdigest()
            if not Token.has_extension(name):
                Token.set_extension(name, getter=BoundedRegex(value["REGEX"], str(key)))
            extensions[name] = True
            rest = {predicate: item for predicate, item in value.items() if predicate != "REGEX"}
            if rest:
                spec[key] = rest
            else:
                del spec[key]
        if extensions:
            spec["_"] = extensions
        changed.append(spec)
    return changed


# token attributes a Matcher pattern may read that only a trained component sets, and the annotation that shows it
_ANNOTATIONS = {"POS": "POS", "TAG": "TAG", "MORPH": "MORPH", "DEP": "DEP", "ENT_TYPE": "ENT_IOB", "ENT_IOB": "ENT_IOB", "ENT_ID": "ENT_IOB",
                "ENT_KB_ID": "ENT_IOB", "SENT_START": "SENT_START", "IS_SENT_START": "SENT_START"}


class CodeSuggester:
    """Matches codebook rules in a Doc and writes suggestions to ``doc.spans``."""

    def __init__(self, nlp: Language, name: str, spans_key: str, evidence_key: str) -> None:
        self.nlp = nlp
        self.name = name
        self.spans_key = spans_key
        self.evidence_key = evidence_key
        self.vocab = nlp.vocab
        self.phrase_matcher = PhraseMatcher(nlp.vocab, attr="NORM")
        self.exact_matcher = PhraseMatcher(nlp.vocab, attr="LOWER")  # terms the codebook wants as written
        self.matcher = Matcher(nlp.vocab, validate=True)
        # One matcher per token pattern, run only on docs holding all of its required words, and (for patterns of a
        # bounded length) only on the stretches around them.
        # (the match ids of each required token's words, matcher, longest match)
        self.gated_patterns: list[tuple[list[frozenset[int]], Any, int | None]] = []
        self._patterns_by_gate: dict[int, list[int]] = {}  # gate word's match id -> the gated patterns requiring it
        self._ungated: list[int] = []  # patterns requiring no word: run on every doc
        self._writes_lemma = False  # a pattern reads LEMMA beside NORM: LEMMA is written too (``_lemma_as_norm``)
        self.rules: dict[int, tuple[str, str, str]] = {}
        self.codebook_fingerprint = ""
        # the words token patterns require, as entries of the phrase matchers (NORM ones in the first, LOWER in the
        # exact one), so the matchers' one pass also says where they are: their match ids
        self._gate_ids: set[int] = set()
        self._lookup: Any = None
        # where negations are: the phrase matchers report them too, under this id (a token negates when its NORM or its
        # LOWER is one of NEGATIONS)
        self._negation_id = nlp.vocab.strings.add(_NEGATION_KEY)
        self._annotated: set[str] | None = None  # which of _ANNOTATIONS the pipeline sets (found when a pattern needs one)

    # -- set-up -------------------------------------------------------------------

    def set_codebook(self, codebook: Codebook, *, lemmas: Mapping[str, str] | None = None) -> None:
        """Build the matchers. ``lemmas``: a lookup table of lemmas to use; None reads a trained pipeline's lemmas."""
        self._lookup = lemmas
        if lemmas is not None:
            self._install_norms(lemmas)
        problems: list[CodebookError] = []  # every bad pattern in one run, as the codebook loader reports its problems
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
            for term in code.exact:
                doc = self.nlp.make_doc(term)
                self.exact_matcher.add(self._rule_key(code.id, "phrase" if len(doc) > 1 else "keyword", term), [doc])
            for index, pattern in enumerate(code.patterns):
                key = self._rule_key(code.id, "pattern", _pattern_text(pattern))
                line = code.pattern_lines[index] if index < len(code.pattern_lines) else code.line
                where: dict[str, Any] = {"path": codebook.path, "line": line, "key_path": f"{code.key_path}.patterns[{index}]"}
                missing = self._unannotated(pattern)
                if missing:
                    # spaCy's Matcher refuses such a pattern on every Doc: every transcript would be skipped
                    problems.append(CodebookError(
                        f"the token pattern for '{code.id}' reads {missing[0]}, which this pipeline does not set"
                        + (" (the built-in one tokenises and lemmatises only)" if self._lookup is not None else ""),
                        fix="match on LOWER, NORM (the lemma), LEMMA or TEXT, or name under 'pipeline' a trained spaCy pipeline that sets it",
                        **where))
                    continue
                unknown = _unregistered_extensions(pattern)
                if unknown:
                    # The Matcher takes these when added and fails only when it meets a token: refuse them here, where
                    # `codebook --check` sees them too.
                    problems.append(CodebookError(f"invalid token pattern for '{code.id}': no token attribute '_.{unknown[0]}' in this pipeline",
                                                  fix=f"{PATTERN_FIX} (custom '_' attributes need a pipeline that sets them)", **where))
                    continue
                try:
                    if self._lookup is not None:
                        pattern = _lemma_as_norm(pattern)
                        self._writes_lemma = self._writes_lemma or _reads_lemma(pattern)
                    pattern = bounded_regexes(pattern)  # every REGEX runs with a time limit (the `regex` module's timeout)
                    self.matcher.add(key, [pattern])
                    matcher = Matcher(self.vocab)
                    matcher.add(key, [pattern])
                    self._add_gated(matcher, pattern)
                except (MatchPatternError, ValueError, TypeError, KeyError) as exc:
                    first = str(exc).strip().splitlines()
                    problems.append(CodebookError(
                        f"invalid token pattern for '{code.id}': {' '.join(first[-3:]) if first else exc}",
                        fix=PATTERN_FIX, **where,
                    ))
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise CodebookProblems(problems)
        self._add_negations()
        self.codebook_fingerprint = codebook.fingerprint

    def _unannotated(self, pattern: list[dict[str, Any]]) -> list[str]:
        """The annotations a pattern reads (POS, TAG, DEP, MORPH, entities, sentence starts) that this pipeline's other
        components do not set, found by running them on a sample sentence, as the Matcher itself checks a Doc."""
        wanted = {str(key).upper() for token in pattern for key in token} & set(_ANNOTATIONS)
        if not wanted:
            return []
        if self._annotated is None:
            doc = self.nlp.make_doc("The team met the deadline in March. Funding ended, and London was quiet.")
            for name, proc in self.nlp.pipeline:
                if proc is not self and name != VECTORS_COMPONENT:
                    doc = proc(doc)
            self._annotated = {attr for attr, check in _ANNOTATIONS.items() if doc.has_annotation(check)}
        return sorted(wanted - self._annotated)

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

    def _add_gated(self, matcher: Any, pattern: list[dict[str, Any]]) -> None:
        """Register a pattern's matcher with its gates: the words of each token it requires, which the phrase matchers
        then find. A doc is a candidate for the pattern when it holds a word of its key token (the first required token
        without a stop word, as "deadline" is in few docs where "be", "the" and "who" are in most; else the first): the
        other gates are checked on candidates only."""
        required = self._requirements(pattern)
        groups = [frozenset(self._add_gate(attr, word) for word in words) for attr, words in required]
        index = len(self.gated_patterns)
        self.gated_patterns.append((groups, matcher, _longest(pattern)))
        if not groups:
            self._ungated.append(index)
            return
        stop_words, strings = self.nlp.Defaults.stop_words, self.vocab.strings
        plain = [group for (_attr, words), group in zip(required, groups) if not any(strings[word] in stop_words for word in words)]
        for match_id in (plain or groups)[0]:
            self._patterns_by_gate.setdefault(match_id, []).append(index)

    def _add_negations(self) -> None:
        """Have the phrase matchers report the negation words too: a token negates when its NORM or its LOWER is one of
        NEGATIONS. With looked-up lemmas a word's NORM is its lower-cased form's lemma, so the NORM entries find every
        negation whose lemma is one too ("n't" -> "not"), and only the others need the LOWER matcher's pass."""
        lookup = self._lookup
        for word in sorted(NEGATIONS):
            self.phrase_matcher.add(_NEGATION_KEY, [self._norm_doc(word)])
            if lookup is None or lookup.get(word, word) not in NEGATIONS:
                self.exact_matcher.add(_NEGATION_KEY, [Doc(self.vocab, words=[word])])
        self._gate_ids.add(self._negation_id)

    def _norm_doc(self, word: str) -> Doc:
        """A one-token Doc whose NORM is ``word`` itself (a Matcher pattern's NORM value is compared as written, not
        lemmatised)."""
        doc = Doc(self.vocab, words=[word])
        doc.from_array([NORM], numpy.array([[self.vocab.strings.add(word)]], dtype="uint64"))  # type: ignore[arg-type]
        return doc

    def _add_gate(self, attr: str, word: int) -> int:
        """Have the phrase matcher for ``attr`` report where the word ``word`` (a string id) is, under the match id
        returned: a one-token Doc whose NORM is the word itself (a Matcher pattern's NORM value is compared as written,
        not lemmatised)."""
        key = f"\x1fgate\x1f{attr}\x1f{word}"
        match_id = self.vocab.strings.add(key)
        if match_id in self._gate_ids:
            return match_id
        self._gate_ids.add(match_id)
        if attr == "NORM":
            self.phrase_matcher.add(key, [self._norm_doc(self.vocab.strings[word])])
        else:
            self.exact_matcher.add(key, [Doc(self.vocab, words=[self.vocab.strings[word]])])
        return match_id

    def _rule_key(self, code: str, kind: str, term: str) -> str:
        key = f"{code}\x1f{kind}\x1f{term}"
        self.rules[self.vocab.strings.add(key)] = (code, kind, term)
        return key

    def _pattern_doc(self, term: str) -> Doc:
        doc = self.nlp.make_doc(term)
        if self._lookup is None:
            # A trained pipeline lemmatises with context: run it on the term too.
            for _name, proc in self.nlp.pipeline:
                if proc is not self:
                    doc = proc(doc)
        self._set_norms(doc)
        return doc

    # -- matching -----------------------------------------------------------------

    def _install_norms(self, lookup: Mapping[str, str]) -> None:
        """Make every word's NORM its lower-cased form's looked-up lemma, once per word rather than once per token: the
        norm becomes a lexeme attribute, computed by the vocabulary when a word is first met (and now for the words it
        already has). Tokenizer exceptions must carry no NORM of their own (``norm_free_tokenizer``), or their tokens
        would keep it; a tokenizer that has them is given its rules again without."""
        vocab: Any = self.vocab

        def lemma(string: str) -> str:
            lower = string.lower()
            return lookup.get(lower, lower)

        vocab.lex_attr_getters = {**vocab.lex_attr_getters, NORM: lemma}
        for lexeme in list(vocab):
            lexeme.norm_ = lemma(lexeme.orth_)
        tokenizer: Any = getattr(self.nlp.tokenizer, "tokenizer", self.nlp.tokenizer)
        rules = getattr(tokenizer, "rules", None) or {}
        if any(_NORM_KEYS & set(token) for tokens in rules.values() for token in tokens):
            tokenizer.rules = _without_norms(rules)

    def _set_norms(self, doc: Doc) -> None:
        """The tokens' NORM, the attribute the PhraseMatcher reads: the lower-cased lemma. With the lookup table the
        norms are already there (``_install_norms``), and are written to LEMMA only when a pattern reads LEMMA beside a
        NORM of its own (``_lemma_as_norm``); a trained pipeline's lemmas are written to NORM here."""
        if not len(doc):
            return
        if self._lookup is None:
            strings = self.vocab.strings
            values = [strings.add(token.lemma_.lower() or token.lower_) for token in doc]
            doc.from_array([NORM], numpy.array(values, dtype="uint64").reshape(-1, 1))  # type: ignore[arg-type]
        elif self._writes_lemma:
            doc.from_array([LEMMA], doc.to_array([NORM]).reshape(-1, 1))  # type: ignore[arg-type]

    def pattern_matches(self, doc: Doc, hits: dict[int, list[int]]) -> list[tuple[int, int, int]]:
        """The token patterns' matches: each pattern only on docs holding a word of its key token (``_add_gated``) and of
        every other token it requires (``hits``: where the phrase matchers found each of them), and (when a match has a
        bounded length) only on the stretches around the rarest of them. The same matches as the Matcher over the whole
        doc, for a fraction of the work."""
        found: list[tuple[int, int, int]] = []
        candidates = self._ungated
        if hits:
            by_gate = self._patterns_by_gate
            chosen = {index for key in hits if key in by_gate for index in by_gate[key]}
            if chosen:
                candidates = sorted(chosen.union(candidates))  # in the codebook's order, as the evidence has always been
        present = hits.keys()
        for index in candidates:
            groups, matcher, longest = self.gated_patterns[index]
            if any(group.isdisjoint(present) for group in groups):
                continue
            if longest is None or not groups:
                found.extend(matcher(doc))
                continue
            # Every match holds a word of each required group: look only around the rarest group's words.
            positions = [[position for key in group if key in hits for position in hits[key]] for group in groups]
            rarest = min(positions, key=lambda found_at: len(found_at))
            for start, end in _windows(sorted(rarest), longest, len(doc)):
                found.extend((match_id, first + start, last + start) for match_id, first, last in matcher(doc[start:end]))
        return found

    def phrase_matches(self, doc: Doc) -> tuple[list[tuple[int, int, int]], dict[int, list[int]]]:
        """The keyword, phrase and exact-term matches, and where each word some token pattern requires is, and each
        negation (one pass of each phrase matcher finds all three). ``_set_norms`` must have run on the doc."""
        matches: list[tuple[int, int, int]] = []
        hits: dict[int, list[int]] = {}
        gates = self._gate_ids
        for matcher in (self.phrase_matcher, self.exact_matcher) if len(self.exact_matcher) else (self.phrase_matcher,):
            for match in matcher(doc):
                if match[0] in gates:
                    hits.setdefault(match[0], []).append(match[1])
                else:
                    matches.append(match)
        return matches, hits

    def __call__(self, doc: Doc) -> Doc:
        self._set_norms(doc)
        matches, hits = self.phrase_matches(doc)
        negations = sorted(hits.pop(self._negation_id, ()))
        if self.gated_patterns:
            matches.extend(self.pattern_matches(doc, hits))
        found: dict[str, list[tuple[Evidence, Span]]] = {}
        for match_id, start, end in matches:
            code, kind, term = self.rules[match_id]
            span = Span(doc, start, end, label=code)  # its character offsets come from the tokens: no Token objects
            # a negation among the NEGATION_WINDOW tokens before the match
            negated = bool(negations) and bisect_left(negations, start) > bisect_left(negations, start - NEGATION_WINDOW)
            found.setdefault(code, []).append((Evidence(term, kind, span.start_char, span.end_char, negated), span))
        suggestions_spans = []
        evidence_spans: list[Span] = []
        confidence: dict[str, float] = {}
        evidence_json: dict[str, list[dict[str, Any]]] = {}
        for code, items in found.items():
            items = _drop_nested(items)
            items.sort(key=lambda item: (item[1].start, item[1].end))
            evidence = [item[0] for item in items]
            confidence[code] = rule_confidence(evidence)
            evidence_json[code] = [item.to_json() for item in evidence]
            suggestions_spans.append(Span(doc, items[0][1].start, max(item[1].end for item in items), label=code))
            evidence_spans.extend(item[1] for item in items)
        doc.spans[self.spans_key] = SpanGroup(
            doc,
            name=self.spans_key,
            spans=suggestions_spans,
            attrs={"confidence": confidence, "evidence": evidence_json, "source": Source.RULES.value},
        )
        doc.spans[self.evidence_key] = SpanGroup(doc, name=self.evidence_key, spans=evidence_spans)
        return doc


def _drop_nested(items: list[tuple[Evidence, Span]]) -> list[tuple[Evidence, Span]]:
    """One rule per matched stretch of text (the heaviest kind), and no match inside a longer one
    of the same code ("deadline" inside "tight deadline"), so one mention counts once.

    A sweep in start order: O(n log n), because one long turn can hold thousands of matches.
    """
    best: dict[tuple[int, int], tuple[Evidence, Span]] = {}
    for item in items:
        where = (item[1].start, item[1].end)
        if where not in best or KIND_WEIGHTS[item[0].kind] > KIND_WEIGHTS[best[where][0].kind]:
            best[where] = item
    kept = []
    furthest = -1
    for (_start, end), item in sorted(best.items(), key=lambda entry: (entry[0][0], -entry[0][1])):
        if end <= furthest:
            continue  # inside an earlier, longer match: spans are unique, so it is strictly longer
        kept.append(item)
        furthest = end
    return kept


def _longest(pattern: list[dict[str, Any]]) -> int | None:
    """How many tokens a match of the pattern can span at most; None when it has no bound (an OP of * or +)."""
    total = 0
    for token in pattern:
        op = str(token.get("OP", "")).strip()
        if op in ("*", "+"):
            return None
        if op.startswith("{"):
            bounds = op.strip("{}").split(",")
            upper = bounds[-1].strip()
            if not upper:
                return None
            total += int(upper)
        else:
            total += 1
    return total


def _windows(anchors: list[int], longest: int, length: int) -> list[tuple[int, int]]:
    """The stretches of at most ``longest`` tokens either side of each anchor, merged where they touch."""
    merged: list[tuple[int, int]] = []
    for anchor in anchors:
        start, end = max(0, anchor - longest + 1), min(length, anchor + longest)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _unregistered_extensions(pattern: list[dict[str, Any]]) -> list[str]:
    from spacy.tokens import Token

    names = [name for token in pattern if isinstance(token.get("_"), dict) for name in token["_"]]
    names += ["" for token in pattern if "_" in token and not isinstance(token["_"], dict)]
    return [name for name in names if not name or not Token.has_extension(name)]


def _lemma_as_norm(pattern: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pattern with LEMMA read as NORM: with the looked-up lemmas a token's LEMMA is its NORM (RULES_VERSION 2), and
    the norms are already every word's, whereas LEMMA would have to be written into every Doc. A token naming both keeps
    its LEMMA (``_reads_lemma``: the suggester then writes LEMMA)."""
    changed = []
    for token in pattern:
        keys = {str(key).upper() for key in token}
        if "LEMMA" in keys and "NORM" not in keys:
            token = {("NORM" if str(key).upper() == "LEMMA" else key): value for key, value in token.items()}
        changed.append(token)
    return changed


def _reads_lemma(pattern: list[dict[str, Any]]) -> bool:
    return any(str(key).upper() == "LEMMA" for token in pattern for key in token)


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


def _without_norms(rules: dict[str, Any]) -> dict[str, Any]:
    return {key: [{attr: value for attr, value in token.items() if attr not in _NORM_KEYS} for token in tokens] for key, tokens in rules.items()}


@registry.tokenizers(NORM_FREE_TOKENIZER)
def norm_free_tokenizer() -> Callable[[Language], Tokenizer]:
    """spaCy's own tokenizer for the language, whose exceptions carry no NORM: the suggester's lexeme-level norms (the
    looked-up lemma) then hold for every token, "n't" and "gonna" alike."""

    def factory(nlp: Language) -> Tokenizer:
        defaults = nlp.Defaults
        return Tokenizer(
            nlp.vocab,
            rules=_without_norms(dict(defaults.tokenizer_exceptions)),
            prefix_search=compile_prefix_regex(defaults.prefixes).search if defaults.prefixes else None,
            suffix_search=compile_suffix_regex(defaults.suffixes).search if defaults.suffixes else None,
            infix_finditer=compile_infix_regex(defaults.infixes).finditer if defaults.infixes else None,
            token_match=defaults.token_match,
            url_match=defaults.url_match,
        )

    return factory


@Language.factory(
    "qualcode_suggester",
    default_config={"spans_key": SPANS_KEY, "evidence_key": EVIDENCE_KEY},
)
def make_code_suggester(nlp: Language, name: str, spans_key: str, evidence_key: str) -> CodeSuggester:
    return CodeSuggester(nlp, name, spans_key, evidence_key)
