"""Suggestions that learn from the researcher's decisions.

One logistic regression per code, trained on review decisions (accepted or added = yes,
rejected = no; a reviewed segment left without a code = no for that code). Features come
from the spaCy pipeline: TF-IDF over lower-cased lemma unigrams and bigrams, the rule
confidence of every code (so each model learns how far its rules can be trusted), and
token vectors when the pipeline has them. A trained code's confidence is the model's
probability; codes with too few examples keep the rules alone.
"""

from __future__ import annotations

import io
import json
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from qualcode.pipeline import Suggestion, suggestions_from_doc

if TYPE_CHECKING:
    from spacy.tokens import Doc

    from qualcode.codebook import Codebook
    from qualcode.store import Store

FEATURE_VERSION = "tfidf-lemma-1-2+rules-1"
MIN_EXAMPLES = 5  # of each class, per code
SUGGEST_THRESHOLD = 0.5
RULE_FEATURE_SCALE = 3.0
C_GRID = (0.5, 2.0, 8.0)


def feature_text(doc: "Doc") -> str:
    """The lemmas the models read: NORM (lower-cased lemma) of words and numbers."""
    return " ".join(token.norm_ for token in doc if token.is_alpha or token.like_num)


@dataclass
class CodeModel:
    code: str
    classifier: Any
    positives: int
    negatives: int
    cv_f1: float | None
    cv_kappa: float | None
    c: float
    threshold: float = 0.5  # chosen by cross-validation; confidence is shifted so it maps to 0.5
    variant: str = "text"  # "text": lemma n-grams; "stacked": also every code's rule confidence

    def confidence(self, probabilities):
        """Probabilities shifted on the logit scale so that this code's threshold becomes 0.5."""
        import numpy as np

        p = np.clip(probabilities, 1e-6, 1 - 1e-6)
        t = min(max(self.threshold, 1e-6), 1 - 1e-6)
        return 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) - np.log(t / (1 - t)))))


@dataclass
class ModelSet:
    """Models for the codes that had enough examples, with the shared vectorizer."""

    vectorizer: Any
    rule_codes: list[str]
    use_vectors: bool
    models: dict[str, CodeModel]
    examples: int
    trained_at: str
    seed: int
    skipped: dict[str, tuple[int, int]] = field(default_factory=dict)
    rules_better: dict[str, tuple[float, float]] = field(default_factory=dict)
    feature_version: str = FEATURE_VERSION

    def features(self, docs: Sequence["Doc"], variant: str = "stacked"):
        return _features(docs, self.vectorizer, self.rule_codes if variant == "stacked" else [], self.use_vectors)

    def probabilities(self, docs: Sequence["Doc"]) -> dict[str, list[float]]:
        if not docs or not self.models:
            return {}
        matrices = {variant: self.features(docs, variant) for variant in {model.variant for model in self.models.values()}}
        return {
            code: model.confidence(model.classifier.predict_proba(matrices[model.variant])[:, 1]).tolist()
            for code, model in self.models.items()
        }

    def summary(self) -> dict[str, Any]:
        return {
            "trained_at": self.trained_at,
            "examples": self.examples,
            "feature_version": self.feature_version,
            "codes": {
                code: {"positives": m.positives, "negatives": m.negatives, "cv_f1": m.cv_f1, "cv_kappa": m.cv_kappa, "C": m.c,
                       "threshold": m.threshold, "features": m.variant}
                for code, m in self.models.items()
            },
            "too_few_examples": {code: {"positives": p, "negatives": n} for code, (p, n) in self.skipped.items()},
            "rules_better": {code: {"rules_kappa": r, "model_cv_kappa": m} for code, (r, m) in self.rules_better.items()},
        }


def _rule_matrix(docs: Sequence["Doc"], rule_codes: list[str]):
    import numpy as np

    index = {code: i for i, code in enumerate(rule_codes)}
    matrix = np.zeros((len(docs), len(rule_codes)))
    for row, doc in enumerate(docs):
        for suggestion in suggestions_from_doc(doc):
            if suggestion.source == "rules" and suggestion.code in index:
                matrix[row, index[suggestion.code]] = suggestion.confidence * RULE_FEATURE_SCALE
    return matrix


def _features(docs: Sequence["Doc"], vectorizer: Any, rule_codes: list[str], use_vectors: bool):
    import numpy as np
    from scipy.sparse import csr_matrix, hstack

    parts = [vectorizer.transform([feature_text(doc) for doc in docs]), csr_matrix(_rule_matrix(docs, rule_codes))]
    if use_vectors:
        vectors = np.array([doc.vector / (np.linalg.norm(doc.vector) or 1.0) for doc in docs])
        parts.append(csr_matrix(vectors))
    return hstack(parts).tocsr()


def fit_models(
    docs: Sequence["Doc"],
    labels: dict[str, Sequence[int | None]],
    *,
    rule_codes: Sequence[str],
    min_examples: int = MIN_EXAMPLES,
    seed: int = 0,
    use_rules: bool = True,
) -> ModelSet:
    """Fit one model per code. ``labels[code][i]`` is 1, 0 or None (unknown) for ``docs[i]``.

    Everything is chosen on the reviewed data alone, by stratified cross-validation: the
    features (lemma n-grams, or those plus every code's rule confidence), C from a small
    grid, and the probability threshold that gives the best kappa. With ``use_rules``, a
    code whose rules agree with the decisions at least as well as the cross-validated model
    keeps its rules. Deterministic for a fixed seed.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labelled = sorted({i for values in labels.values() for i, value in enumerate(values) if value is not None})
    texts = [feature_text(docs[i]) for i in labelled]
    codes_for_rules = list(rule_codes) if use_rules else []
    trained_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not any(text.strip() for text in texts):
        skipped = {code: (sum(1 for v in values if v == 1), sum(1 for v in values if v == 0)) for code, values in labels.items()}
        return ModelSet(None, codes_for_rules, False, {}, len(labelled), trained_at, seed, skipped)
    vectorizer = TfidfVectorizer(
        token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2), sublinear_tf=True, min_df=2 if len(texts) >= 200 else 1, max_features=50_000
    )
    vectorizer.fit(texts)
    use_vectors = bool(docs) and docs[0].vocab.vectors.shape[0] > 0 and docs[0].vocab.vectors.shape[1] > 0
    models: dict[str, CodeModel] = {}
    skipped: dict[str, tuple[int, int]] = {}
    rules_better: dict[str, tuple[float, float]] = {}
    labelled_docs = [docs[i] for i in labelled]
    matrices = {"text": _features(labelled_docs, vectorizer, [], use_vectors)}
    if codes_for_rules:
        matrices["stacked"] = _features(labelled_docs, vectorizer, codes_for_rules, use_vectors)
    rule_hits = _rule_matrix(labelled_docs, list(rule_codes))
    row_of = {doc_index: row for row, doc_index in enumerate(labelled)}
    for code, values in sorted(labels.items()):
        known = [i for i, value in enumerate(values) if value is not None]
        rows = [row_of[i] for i in known]
        y = np.array([values[i] for i in known], dtype=int)
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        if positives < min_examples or negatives < min_examples:
            skipped[code] = (positives, negatives)
            continue
        large = len(y) >= 1000
        folds = StratifiedKFold(min(3 if large else 5, positives, negatives), shuffle=True, random_state=seed)
        best = None
        for variant, matrix in matrices.items():
            x = matrix[rows]
            for c in (2.0,) if large else C_GRID:
                probabilities = cross_val_predict(_classifier(c, seed), x, y, cv=folds, method="predict_proba")[:, 1]
                threshold, kappa, f1 = _best_threshold(y, probabilities)
                if best is None or kappa > best[0] + 1e-9:
                    best = (kappa, f1, c, threshold, variant)
        kappa, f1, c, threshold, variant = best
        if use_rules and code in rule_codes:
            fired = (rule_hits[rows, list(rule_codes).index(code)] > 0).astype(int)
            rules_kappa = _kappa(y, fired)
            if rules_kappa >= kappa:
                rules_better[code] = (round(rules_kappa, 4), round(kappa, 4))
                continue
        classifier = _classifier(c, seed).fit(matrices[variant][rows], y)
        models[code] = CodeModel(code, classifier, positives, negatives, round(f1, 4), round(kappa, 4), c, threshold, variant)
    return ModelSet(
        vectorizer=vectorizer,
        rule_codes=codes_for_rules,
        use_vectors=use_vectors,
        models=models,
        examples=len(labelled),
        trained_at=trained_at,
        seed=seed,
        skipped=skipped,
        rules_better=rules_better,
    )


def _classifier(c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", solver="liblinear", random_state=seed, max_iter=2000)


def _kappa(y, predicted) -> float:
    from qualcode.evaluation import cohen_kappa

    value = cohen_kappa(list(map(int, y)), list(map(int, predicted)))
    return 0.0 if value is None else float(value)


def _best_threshold(y, probabilities) -> tuple[float, float, float]:
    """The threshold (from 0.1 to 0.9) whose predictions agree best with y (kappa), with that kappa and F1."""
    from qualcode.evaluation import precision_recall_f1

    best = (0.5, -2.0, 0.0)
    for step in range(1, 18):
        threshold = step * 0.05
        predicted = (probabilities >= threshold).astype(int)
        kappa = _kappa(y, predicted)
        if kappa > best[1] + 1e-9:
            f1 = precision_recall_f1(list(y), list(predicted))[2] or 0.0
            best = (round(threshold, 2), kappa, f1)
    return best


def counts_as_yes(source: str, confidence: float) -> bool:
    """Whether a stored suggestion is the machine saying 'this code applies'.

    Rule suggestions apply when they fire; a trained model's must reach 0.5.
    """
    return source == "rules" or confidence >= SUGGEST_THRESHOLD


def blend(docs: Sequence["Doc"], models: ModelSet | None, *, min_confidence: float = 0.0) -> list[list[Suggestion]]:
    """Suggestions per doc: rules for codes without a model; the model's probability for trained codes.

    A trained code is suggested when its probability reaches 0.5, or when its rules fired
    (then with the model's probability as confidence, so a rule the researcher keeps
    rejecting sinks). ``source`` says what stands behind each suggestion.
    """
    probabilities = models.probabilities(docs) if models is not None else {}
    results = []
    for row, doc in enumerate(docs):
        rules = {suggestion.code: suggestion for suggestion in suggestions_from_doc(doc)}
        merged = []
        for code, suggestion in rules.items():
            if code in probabilities:
                probability = round(probabilities[code][row], 3)
                merged.append(Suggestion(code, probability, suggestion.evidence, "both"))
            else:
                merged.append(suggestion)
        for code, values in probabilities.items():
            if code not in rules and values[row] >= SUGGEST_THRESHOLD:
                merged.append(Suggestion(code, round(values[row], 3), [], "model"))
        results.append(sorted((s for s in merged if s.confidence >= min_confidence), key=lambda s: s.code))
    return results


# -- training data from the store, and keeping models in it ----------------------------------


def training_labels(store: "Store", codes: Iterable[str]) -> tuple[list[int], dict[str, list[int | None]], int]:
    """Segment ids with any decision, and per code a label for each: 1, 0, or None (unknown).

    All coders' standing decisions are pooled; where coders disagree on a segment and code,
    the most recent decision wins.
    """
    codes = list(codes)
    latest: dict[tuple[int, str], tuple[int, str]] = {}
    for (segment_id, code, _coder), row in store.latest_decisions().items():
        previous = latest.get((segment_id, code))
        if previous is None or row["id"] > previous[0]:
            latest[(segment_id, code)] = (row["id"], row["verdict"])
    reviewed: set[int] = set()
    for coder in store.coders():
        reviewed.update(segment_id for segment_id, state in store.coder_states(coder).items() if state.reviewed)
    segment_ids = sorted(reviewed | {segment_id for segment_id, _code in latest})
    active = {row["id"] for row in store.coded_segments()}
    segment_ids = [segment_id for segment_id in segment_ids if segment_id in active]
    labels: dict[str, list[int | None]] = {}
    for code in codes:
        values: list[int | None] = []
        for segment_id in segment_ids:
            decision = latest.get((segment_id, code))
            if decision is not None:
                values.append(1 if decision[1] in ("accepted", "added") else 0)
            else:
                values.append(0 if segment_id in reviewed else None)
        labels[code] = values
    decisions = store.training_decisions()
    return segment_ids, labels, decisions


def save_models(store: "Store", models: ModelSet, *, decisions: int) -> int:
    buffer = io.BytesIO()
    pickle.dump(models, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    with store.transaction() as db:
        cursor = db.execute(
            "INSERT INTO model_runs (trained_at, decisions, summary, model) VALUES (?, ?, ?, ?)",
            (models.trained_at, decisions, json.dumps(models.summary()), buffer.getvalue()),
        )
    return int(cursor.lastrowid)


def latest_run(store: "Store") -> tuple[int, int, dict[str, Any]] | None:
    row = store.db.execute("SELECT id, decisions, summary FROM model_runs ORDER BY id DESC LIMIT 1").fetchone()
    return (row["id"], row["decisions"], json.loads(row["summary"])) if row else None


def load_models(store: "Store") -> tuple[int, ModelSet] | None:
    """The latest models (from this project's own database)."""
    row = store.db.execute("SELECT id, model FROM model_runs ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    return row["id"], pickle.loads(row["model"])  # noqa: S301 - written by this project's own `train`


def label_counts(labels: dict[str, list[int | None]]) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for code, values in labels.items():
        counts[code] = (sum(1 for v in values if v == 1), sum(1 for v in values if v == 0))
    return dict(counts)
