"""How matched evidence becomes a rule suggestion's confidence, and where the spaCy
component writes its results. Pure data and arithmetic: no spaCy here."""

from __future__ import annotations

import math
from typing import Sequence

from qualcode.suggestion import Evidence

RULES_VERSION = "rules-2"  # 2: LEMMA is the lower-cased looked-up lemma, as NORM
SPANS_KEY = "qualcode"
EVIDENCE_KEY = "qualcode_evidence"
NORM_FREE_TOKENIZER = "qualcode.norm_free_tokenizer.v1"  # spaCy's tokenizer, its exceptions without NORM
VECTORS_COMPONENT = "qualcode_vectors"  # the sentence-vector component's name in a pipeline
KIND_WEIGHTS = {"phrase": 1.0, "pattern": 1.0, "keyword": 0.6}
REPEAT_WEIGHT = 0.2
MAX_REPEAT_BONUS = 0.4
NEGATED_FACTOR = 0.8
CONFIDENCE_SCALE = 0.8
NEGATIONS = frozenset({"not", "no", "never", "n't", "nothing", "without", "hardly", "nobody", "neither", "nor", "none"})
NEGATION_WINDOW = 3


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
