"""Suggestions that learn from the researcher's decisions, and blending them with the rules.

One logistic regression per code, trained on review decisions (accepted or added = yes,
rejected = no; a reviewed segment left without a code = no for that code). Features come
from the spaCy pipeline: TF-IDF over lower-cased lemma unigrams and bigrams, the rule
confidence of every code (so each model learns how far its rules can be trusted), and
token vectors when the pipeline has them. A trained code's confidence is the model's
probability; codes with too few examples keep the rules alone.

Fitted models are kept as plain parameters (arrays and JSON, ``to_bytes``/``from_bytes``)
and read back with NumPy's pickle-free loader: a project database is shared, and nothing
read from it may run code.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from qualcode.errors import ProjectError
from qualcode.statistics import kappa_or_zero, precision_recall_f1
from qualcode.suggest.pipeline import suggestions_from_doc
from qualcode.suggestion import SUGGEST_THRESHOLD, Suggestion
from qualcode.vocabulary import ContextFeatures, Source, VectorModel

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

FEATURE_VERSION = "tfidf-lemma-1-2+rules-1"
PARAMETERS_FORMAT = "npz-1"
MIN_EXAMPLES = 5  # of each class, per code
RULE_FEATURE_SCALE = 3.0
# The sentence-vector block's weight against the TF-IDF block: one fixed, strong regularisation for the dense block
# (tuning it per code by cross-validation on a handful of positives overfits), chosen on benchmarks/quality.py.
VECTOR_FEATURE_SCALE = 1.0
# A neighbour's vector (the question, the previous segment) counts half as much as the segment's own: context should
# tip a doubtful case, not code a segment for what was said around it.
CONTEXT_FEATURE_SCALE = 0.5
C_GRID = (0.5, 2.0, 8.0)
CURVE_SHARES = (0.5, 0.75)  # of the examples, for each model's learning curve
CURVE_MARGIN = 0.05  # "near the plateau": within this much kappa of where the learning curve levels off
MIN_CURVE_POSITIVES = 20  # fewer, and half of them is too few for the curve to say anything
MAX_OUTLOOK = 100_000
# A stored model run larger than this when unpacked is refused rather than read.
MAX_PARAMETER_BYTES = 1 << 30
_VECTORIZER_PARAMS = {"token_pattern": r"\S+", "lowercase": False, "ngram_range": (1, 2), "sublinear_tf": True, "max_features": 50_000}


def feature_text(doc: "Doc") -> str:
    """The lemmas the models read: NORM (lower-cased lemma) of words and numbers."""
    return " ".join(token.norm_ for token in doc if token.is_alpha or token.like_num)


@dataclass
class CodeModel:
    code: str
    coef: Any  # weights of a logistic regression, one per feature
    intercept: float
    positives: int
    negatives: int
    cv_f1: float | None
    cv_kappa: float | None
    c: float
    threshold: float = 0.5  # chosen by cross-validation; the decision score is shifted so it maps to 0.5
    variant: str = "text"  # "text": lemma n-grams; "stacked": also every code's rule confidence
    # Platt scaling of the decision score's logit, fitted on the cross-validated predictions: what is shown is then the
    # probability that the code applies (balanced class weights and the threshold shift make the raw score a rank).
    calibration: tuple[float, float] = (1.0, 0.0)
    # (examples, cross-validated kappa) on a half, three quarters and all of the examples: the learning curve
    curve: list[tuple[int, float]] = field(default_factory=list)

    def outlook(self) -> tuple[float | None, int | None]:
        """The kappa the learning curve levels off at, and about how many more reviewed segments bring the model within
        ``CURVE_MARGIN`` of it (0: it is there; None: too few points to say)."""
        return learning_outlook(self.curve) if self.positives >= MIN_CURVE_POSITIVES else (None, None)

    def probability(self, features: Any) -> Any:
        import numpy as np

        scores = np.asarray(features @ self.coef).ravel() + self.intercept
        return 1.0 / (1.0 + np.exp(-scores))

    def confidence(self, probabilities: Any) -> Any:
        """Probabilities shifted on the logit scale so that this code's threshold becomes 0.5."""
        import numpy as np

        p = np.clip(probabilities, 1e-6, 1 - 1e-6)
        t = min(max(self.threshold, 1e-6), 1 - 1e-6)
        return 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) - np.log(t / (1 - t)))))

    def calibrated(self, scores: Any) -> Any:
        """Decision scores (``confidence``) as probabilities that the code applies."""
        import numpy as np

        s = np.clip(np.asarray(scores, dtype=float), 1e-6, 1 - 1e-6)
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * np.log(s / (1 - s)) + b)))


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
    sentence_vectors: VectorModel = VectorModel.NONE
    context: ContextFeatures = ContextFeatures.NONE

    def features(self, docs: Sequence["Doc"], variant: str = "stacked") -> Any:
        return _features(docs, self.vectorizer, self.rule_codes if variant == "stacked" else [], self.use_vectors,
                         self.sentence_vectors, self.context)

    def probabilities(self, docs: Sequence["Doc"]) -> dict[str, list[float]]:
        if not docs or not self.models:
            return {}
        matrices = {variant: self.features(docs, variant) for variant in {model.variant for model in self.models.values()}}
        return {code: model.confidence(model.probability(matrices[model.variant])).tolist() for code, model in self.models.items()}

    def calibrated(self, scores: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
        """``probabilities()`` (decision scores) as calibrated probabilities that each code applies."""
        return {code: self.models[code].calibrated(values).tolist() for code, values in scores.items()}

    def restricted_to(self, codes: Iterable[str]) -> "ModelSet":
        """The same models, without those of codes no longer in the codebook."""
        keep = set(codes)
        self.models = {code: model for code, model in self.models.items() if code in keep}
        return self

    def summary(self) -> dict[str, Any]:
        return {
            "trained_at": self.trained_at,
            "examples": self.examples,
            "feature_version": self.feature_version,
            "sentence_vectors": self.sentence_vectors.value,
            "context": self.context.value,
            "codes": {code: _model_summary(m) for code, m in self.models.items()},
            "too_few_examples": {code: {"positives": p, "negatives": n} for code, (p, n) in self.skipped.items()},
            "rules_better": {code: {"rules_kappa": r, "model_cv_kappa": m} for code, (r, m) in self.rules_better.items()},
        }

    # -- keeping models without pickles ------------------------------------------------

    def to_bytes(self) -> bytes:
        """The fitted parameters as an .npz archive: arrays, and one JSON document for the rest."""
        import numpy as np

        vocabulary = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get) if self.vectorizer is not None else []
        meta = {
            "format": PARAMETERS_FORMAT,
            "vocabulary": vocabulary,
            "min_df": self.vectorizer.min_df if self.vectorizer is not None else 1,
            "rule_codes": self.rule_codes,
            "use_vectors": self.use_vectors,
            "examples": self.examples,
            "trained_at": self.trained_at,
            "seed": self.seed,
            "skipped": self.skipped,
            "rules_better": self.rules_better,
            "feature_version": self.feature_version,
            "sentence_vectors": self.sentence_vectors.value,
            "context": self.context.value,
            "codes": [
                {"code": m.code, "intercept": m.intercept, "positives": m.positives, "negatives": m.negatives, "cv_f1": m.cv_f1,
                 "cv_kappa": m.cv_kappa, "c": m.c, "threshold": m.threshold, "variant": m.variant, "calibration": list(m.calibration),
                 "curve": [list(point) for point in m.curve]}
                for m in self.models.values()
            ],
        }
        arrays: dict[str, Any] = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
        if self.vectorizer is not None:
            arrays["idf"] = np.asarray(self.vectorizer.idf_, dtype=np.float64)
        for index, model in enumerate(self.models.values()):
            arrays[f"coef_{index}"] = np.asarray(model.coef, dtype=np.float64).ravel()
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, run: int) -> "ModelSet":
        """Parameters written by ``to_bytes``, read without unpickling anything; anything else is refused."""
        import numpy as np

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if sum(info.file_size for info in archive.infolist()) > MAX_PARAMETER_BYTES:
                    raise ValueError("larger than qualcode ever writes")
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
                if meta.get("format") != PARAMETERS_FORMAT:
                    raise ValueError(f"format {meta.get('format')!r}")
                vectorizer = None
                if meta["vocabulary"]:
                    vectorizer = _vectorizer(min_df=meta["min_df"])
                    vectorizer.vocabulary_ = {term: index for index, term in enumerate(meta["vocabulary"])}
                    vectorizer.idf_ = arrays["idf"]
                models = {}
                for index, entry in enumerate(meta["codes"]):
                    coef = arrays[f"coef_{index}"]
                    models[entry["code"]] = CodeModel(
                        entry["code"], coef, float(entry["intercept"]), int(entry["positives"]), int(entry["negatives"]),
                        entry["cv_f1"], entry["cv_kappa"], float(entry["c"]), float(entry["threshold"]), str(entry["variant"]),
                        _calibration(entry.get("calibration", (1.0, 0.0))),
                        [(int(n), float(k)) for n, k in entry.get("curve", [])],
                    )
                sentence_vectors = VectorModel(meta.get("sentence_vectors", VectorModel.NONE.value))
                context = ContextFeatures(meta.get("context", ContextFeatures.NONE.value))
        except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
            raise ProjectError(
                f"model run {run} cannot be read ({exc})",
                fix="run 'qualcode train' to fit the models again",
            ) from None
        return cls(
            vectorizer, list(meta["rule_codes"]), bool(meta["use_vectors"]), models, int(meta["examples"]), str(meta["trained_at"]),
            int(meta["seed"]), {code: (int(value[0]), int(value[1])) for code, value in meta["skipped"].items()},
            {code: (float(value[0]), float(value[1])) for code, value in meta["rules_better"].items()},
            str(meta["feature_version"]), sentence_vectors, context,
        )


def _model_summary(m: CodeModel) -> dict[str, Any]:
    plateau, more = m.outlook()
    return {"positives": m.positives, "negatives": m.negatives, "cv_f1": m.cv_f1, "cv_kappa": m.cv_kappa, "C": m.c,
            "threshold": m.threshold, "features": m.variant, "calibration": list(m.calibration),
            "curve": [list(point) for point in m.curve], "plateau_kappa": plateau, "more_decisions": more}


def _vectorizer(*, min_df: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(min_df=min_df, **_VECTORIZER_PARAMS)


def _rule_matrix(docs: Sequence["Doc"], rule_codes: list[str]) -> Any:
    import numpy as np

    index = {code: i for i, code in enumerate(rule_codes)}
    matrix = np.zeros((len(docs), len(rule_codes)))
    for row, doc in enumerate(docs):
        for suggestion in suggestions_from_doc(doc):
            if suggestion.source == Source.RULES and suggestion.code in index:
                matrix[row, index[suggestion.code]] = suggestion.confidence * RULE_FEATURE_SCALE
    return matrix


def _features(docs: Sequence["Doc"], vectorizer: Any, rule_codes: list[str], use_vectors: bool,
              sentence_vectors: VectorModel = VectorModel.NONE, context: ContextFeatures = ContextFeatures.NONE) -> Any:
    import numpy as np
    from scipy.sparse import csr_matrix, hstack

    parts = [vectorizer.transform([feature_text(doc) for doc in docs]), csr_matrix(_rule_matrix(docs, rule_codes))]
    if use_vectors:
        vectors = np.array([np.asarray(doc.vector) / (np.linalg.norm(np.asarray(doc.vector)) or 1.0) for doc in docs])
        parts.append(csr_matrix(vectors))
    if sentence_vectors != VectorModel.NONE:
        from qualcode.suggest.vectors import doc_vectors

        parts.append(csr_matrix(doc_vectors(docs, sentence_vectors) * VECTOR_FEATURE_SCALE))
        if context != ContextFeatures.NONE:
            from qualcode.suggest.vectors import context_matrix

            parts.append(csr_matrix(context_matrix(docs, sentence_vectors, context) * CONTEXT_FEATURE_SCALE))
    return hstack(parts).tocsr()


def fit_models(
    docs: Sequence["Doc"],
    labels: Mapping[str, Sequence[int | None]],
    *,
    rule_codes: Sequence[str],
    min_examples: int = MIN_EXAMPLES,
    seed: int = 0,
    use_rules: bool = True,
    vectors: VectorModel = VectorModel.NONE,
    context: ContextFeatures = ContextFeatures.NONE,
) -> ModelSet:
    """Fit one model per code. ``labels[code][i]`` is 1, 0 or None (unknown) for ``docs[i]``.

    Everything is chosen on the reviewed data alone, by stratified cross-validation: the
    features (lemma n-grams, or those plus every code's rule confidence), C from a small
    grid, and the probability threshold that gives the best kappa. With ``use_rules``, a
    code whose rules agree with the decisions at least as well as the cross-validated model
    keeps its rules. With ``vectors``, each segment's sentence vector joins the features, and with ``context`` its
    neighbours' vectors (``doc._.qc_context``), down-weighted. Deterministic for a fixed seed.
    """
    import numpy as np
    from sklearn.model_selection import cross_val_predict

    labelled = sorted({i for values in labels.values() for i, value in enumerate(values) if value is not None})
    texts = [feature_text(docs[i]) for i in labelled]
    codes_for_rules = list(rule_codes) if use_rules else []
    trained_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if vectors == VectorModel.NONE:
        context = ContextFeatures.NONE  # neighbours are read through their vectors
    if not any(text.strip() for text in texts):
        counts = {code: (sum(1 for v in values if v == 1), sum(1 for v in values if v == 0)) for code, values in labels.items()}
        return ModelSet(None, codes_for_rules, False, {}, len(labelled), trained_at, seed, counts, sentence_vectors=vectors, context=context)
    vectorizer = _vectorizer(min_df=2 if len(texts) >= 200 else 1)
    vectorizer.fit(texts)
    use_vectors = bool(docs) and docs[0].vocab.vectors.shape[0] > 0 and docs[0].vocab.vectors.shape[1] > 0
    models: dict[str, CodeModel] = {}
    skipped: dict[str, tuple[int, int]] = {}
    rules_better: dict[str, tuple[float, float]] = {}
    labelled_docs = [docs[i] for i in labelled]
    matrices = {"text": _features(labelled_docs, vectorizer, [], use_vectors, vectors, context)}
    if codes_for_rules:
        matrices["stacked"] = _features(labelled_docs, vectorizer, codes_for_rules, use_vectors, vectors, context)
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
        folds = _folds(large, positives, negatives, seed)
        best: tuple[float, float, float, float, str, Any] | None = None
        for variant, matrix in matrices.items():
            x = matrix[rows]
            for c in (2.0,) if large else C_GRID:
                probabilities = cross_val_predict(_classifier(c, seed), x, y, cv=folds, method="predict_proba")[:, 1]
                threshold, kappa, f1 = _best_threshold(y, probabilities)
                if best is None or kappa > best[0] + 1e-9:
                    best = (kappa, f1, c, threshold, variant, probabilities)
        assert best is not None
        kappa, f1, c, threshold, variant, held_out = best
        if use_rules and code in rule_codes:
            fired = (rule_hits[rows, list(rule_codes).index(code)] > 0).astype(int)
            rules_kappa = kappa_or_zero(y, fired)
            if rules_kappa >= kappa:
                rules_better[code] = (round(rules_kappa, 4), round(kappa, 4))
                continue
        classifier = _classifier(c, seed).fit(matrices[variant][rows], y)
        model = CodeModel(code, classifier.coef_.ravel().copy(), float(classifier.intercept_[0]), positives, negatives,
                          round(f1, 4), round(kappa, 4), c, threshold, variant)
        model.calibration = _platt(model.confidence(held_out), y, seed)
        model.curve = _learning_curve(matrices[variant][rows], y, c, seed, len(y), kappa)
        models[code] = model
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
        sentence_vectors=vectors,
        context=context,
    )


def _folds(large: bool, positives: int, negatives: int, seed: int) -> Any:
    """The cross-validation every choice is made by: 5 stratified folds (3 from 1,000 examples), fewer for a small class."""
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(min(3 if large else 5, positives, negatives), shuffle=True, random_state=seed)


def _learning_curve(x: Any, y: Any, c: float, seed: int, n: int, kappa: float) -> list[tuple[int, float]]:
    """Cross-validated kappa of the chosen features and C on stratified shares of the examples, and on all of them."""
    import numpy as np
    from sklearn.model_selection import cross_val_predict, train_test_split

    points: list[tuple[int, float]] = []
    for share in CURVE_SHARES:
        try:
            keep, _rest = train_test_split(np.arange(n), train_size=share, stratify=y, random_state=seed)
        except ValueError:  # a class too small to split
            continue
        sub = y[keep]
        positives, negatives = int(sub.sum()), int(len(sub) - sub.sum())
        if min(positives, negatives) < 2:
            continue
        probabilities = cross_val_predict(_classifier(c, seed), x[keep], sub, cv=_folds(n >= 1000, positives, negatives, seed),
                                          method="predict_proba")[:, 1]
        points.append((len(sub), round(_best_threshold(sub, probabilities)[1], 4)))
    return points + [(n, round(kappa, 4))]


def learning_outlook(curve: Sequence[tuple[int, float]]) -> tuple[float | None, int | None]:
    """Fit kappa(n) = a - b / sqrt(n) to the curve (least squares): a is where it levels off, and (b / margin)^2 the
    examples at which it comes within ``CURVE_MARGIN`` of a. A flat or falling curve says more decisions buy little."""
    import numpy as np

    if len(curve) < 2:
        return None, None
    n = np.array([point[0] for point in curve], dtype=float)
    k = np.array([point[1] for point in curve], dtype=float)
    slope, intercept = np.polyfit(1.0 / np.sqrt(n), k, 1)
    b = -float(slope)
    if b <= 0:  # no better with all the examples than with half of them
        return round(float(k.max()), 2), 0
    plateau = min(1.0, float(intercept))
    needed = (b / CURVE_MARGIN) ** 2
    return round(plateau, 2), int(min(MAX_OUTLOOK, max(0.0, np.ceil(needed - n.max()))))


def _platt(scores: Any, y: Any, seed: int) -> tuple[float, float]:
    """Platt's sigmoid from held-out decision scores to the decisions: (slope, intercept) on the scores' logit.

    The slope is kept positive (a higher score never means less likely); with a class this small
    the fit is mildly regularised, as Platt's own target smoothing does.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    s = np.clip(np.asarray(scores, dtype=float), 1e-6, 1 - 1e-6)
    z = np.log(s / (1 - s)).reshape(-1, 1)
    fitted = LogisticRegression(C=1.0, solver="lbfgs", random_state=seed, max_iter=1000).fit(z, y)
    return (round(max(float(fitted.coef_[0][0]), 0.05), 4), round(float(fitted.intercept_[0]), 4))


def _calibration(value: Any) -> tuple[float, float]:
    slope, intercept = (float(item) for item in value)
    if not (0 < slope < 1e3 and -1e3 < intercept < 1e3):
        raise ValueError(f"calibration {value!r}")
    return slope, intercept


def _classifier(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", solver="liblinear", random_state=seed, max_iter=2000)


def _best_threshold(y: Any, probabilities: Any) -> tuple[float, float, float]:
    """The threshold (from 0.1 to 0.9) whose predictions agree best with y (kappa), with that kappa and F1."""
    best = (0.5, -2.0, 0.0)
    for step in range(1, 18):
        threshold = step * 0.05
        predicted = (probabilities >= threshold).astype(int)
        kappa = kappa_or_zero(y, predicted)
        if kappa > best[1] + 1e-9:
            f1 = precision_recall_f1(list(y), list(predicted))[2] or 0.0
            best = (round(threshold, 2), kappa, f1)
    return best


def blend(docs: Sequence["Doc"], models: ModelSet | None, *, min_confidence: float = 0.0) -> list[list[Suggestion]]:
    """Suggestions per doc: rules for codes without a model; the model's probability for trained codes.

    A trained code is suggested when its decision score reaches 0.5 (its own cross-validated
    threshold), or when its rules fired (then saying whether the model agrees, so a rule the
    researcher keeps rejecting sinks). The confidence of a trained code is its calibrated
    probability; ``applies`` carries the decision. ``source`` says what stands behind each.
    """
    scores = models.probabilities(docs) if models is not None else {}
    probabilities = models.calibrated(scores) if models is not None else {}
    results = []
    for row, doc in enumerate(docs):
        rules = {suggestion.code: suggestion for suggestion in suggestions_from_doc(doc)}
        merged = []
        for code, suggestion in rules.items():
            if code in scores:
                says = bool(scores[code][row] >= SUGGEST_THRESHOLD)
                merged.append(Suggestion(code, round(probabilities[code][row], 3), suggestion.evidence, Source.BOTH, says))
            else:
                merged.append(suggestion)
        for code, values in scores.items():
            if code not in rules and values[row] >= SUGGEST_THRESHOLD:
                merged.append(Suggestion(code, round(probabilities[code][row], 3), [], Source.MODEL, True))
        results.append(sorted((s for s in merged if s.confidence >= min_confidence), key=lambda s: s.code))
    return results


def suggest(
    nlp: "Language", texts: Iterable["str | Doc"], *, batch_size: int = 256, min_confidence: float = 0.0, models: ModelSet | None = None
) -> list[list[Suggestion]]:
    """Suggestions for each text (or tokenised Doc carrying its vectors), in order, through ``nlp.pipe``; blended with
    learned models when given."""
    results: list[list[Suggestion]] = []
    if models is None:
        for doc in nlp.pipe(texts, batch_size=batch_size):
            results.append([item for item in suggestions_from_doc(doc) if item.confidence >= min_confidence])
        return results
    batch: list = []
    # Docs are kept one batch at a time: a huge transcript must not hold all its Docs at once.
    for doc in nlp.pipe(texts, batch_size=batch_size):
        batch.append(doc)
        if len(batch) == batch_size:
            results.extend(blend(batch, models, min_confidence=min_confidence))
            batch = []
    results.extend(blend(batch, models, min_confidence=min_confidence))
    return results
