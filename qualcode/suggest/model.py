"""Suggestions that learn from the researcher's decisions, and blending them with the rules.

One logistic regression per code, trained on review decisions (accepted or added = yes,
rejected = no; a reviewed segment left without a code = no for that code). Features come
from the spaCy pipeline: TF-IDF over lower-cased lemma unigrams and bigrams, the rule
confidence of every code (so each model learns how far its rules can be trusted), and
sentence vectors. A model must earn its place: it speaks for its code only when its honest
cross-validated kappa reaches a floor and beats the code's own rules on the same reviewed
segments by more than twice the paired difference's standard error; otherwise the code keeps
its rules. A trained code's confidence is the model's calibrated probability.

Fitted models are kept as plain parameters (arrays and JSON, ``to_bytes``/``from_bytes``)
and read back with NumPy's pickle-free loader: a project database is shared, and nothing
read from it may run code.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from qualcode.errors import ProjectError
from qualcode.statistics import kappa_or_zero, precision_recall_f1
from qualcode.suggest.pipeline import suggestions_from_doc
from qualcode.suggest.rules import VECTORS_COMPONENT
from qualcode.suggest.terms import Terms, feature_text
from qualcode.suggestion import SUGGEST_THRESHOLD, Suggestion
from qualcode.vocabulary import ContextFeatures, Role, Source, VectorModel

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
THRESHOLDS = tuple(round(step * 0.05, 2) for step in range(1, 18))  # the decision thresholds a model may choose, 0.05 to 0.85
# A model speaks only when its honest cross-validated kappa reaches this floor: below it, its suggestions are mostly noise
# (a code at 0.13 suggested plain answers of other codes), and the code keeps its rules, or nothing, until it learns more.
KAPPA_FLOOR = 0.2
# A model speaks for a code only when it beats the code's rules by more than twice the paired difference's standard
# error (bootstrapped over the reviewed segments; about a one-sided test at 97.5%): a handful of examples cannot make that
# margin, so the rules stay. One standard error still let models of 6-9 positives replace rules they did worse than on
# new segments (benchmarks/quality.py, "rules against learned": 2 codes more than 0.05 below their rules; none at two).
MARGIN_ERRORS = 2.0
BOOTSTRAP_ROUNDS = 200
CURVE_SHARES = (0.5, 0.75)  # of the examples, for each model's learning curve
CURVE_MARGIN = 0.05  # "near the plateau": within this much kappa of where the learning curve levels off
MIN_CURVE_POSITIVES = 20  # fewer, and half of them is too few for the curve to say anything
# A stored model run larger than this when unpacked is refused rather than read.
MAX_PARAMETER_BYTES = 1 << 30


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
    rules_kappa: float | None = None  # the code's rules on the same reviewed segments, which the model beat
    margin: float | None = None  # by more than this: twice the bootstrapped standard error of the paired difference
    role: Role = Role.DECIDES  # decides the code where its rules fire too, or only adds to the rules' yes

    def outlook(self, segments: int) -> tuple[float | None, int | None]:
        """``learning_outlook`` of this model's curve in a project of ``segments`` (None, None: too few examples to say)."""
        return learning_outlook(self.curve, segments) if self.positives >= MIN_CURVE_POSITIVES else (None, None)


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
class Judgement:
    """A code with enough examples whose model does not speak: below ``KAPPA_FLOOR`` (still learning), or not better
    than the code's rules by more than ``margin`` (``MARGIN_ERRORS`` standard errors; the rules stay). Kappas are honest
    cross-validated estimates."""

    positives: int
    negatives: int
    rules_kappa: float
    model_kappa: float
    margin: float
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def learning(self) -> bool:
        """Below the floor: the model is not good enough yet, whatever the rules do."""
        return self.model_kappa < KAPPA_FLOOR

    def needed(self, segments: int) -> int | None:
        """About how many more reviewed segments bring the model to ``KAPPA_FLOOR``, by its learning curve, when that
        happens within the project (``segments`` in all); None when the curve cannot say so."""
        return examples_to_reach(self.curve, KAPPA_FLOOR, segments) if self.learning and self.positives >= MIN_CURVE_POSITIVES // 2 else None

    def to_json(self, segments: int) -> dict[str, Any]:
        return {"positives": self.positives, "negatives": self.negatives, "rules_kappa": self.rules_kappa,
                "model_cv_kappa": self.model_kappa, "margin": self.margin, "curve": [list(point) for point in self.curve],
                "learning": self.learning, "needed": self.needed(segments)}

@dataclass
class ModelSet:
    """Models for the codes that had enough examples, with the lemma n-grams they share (None: no segment had a word)."""

    terms: Terms | None
    rule_codes: list[str]
    use_vectors: bool
    models: dict[str, CodeModel]
    examples: int
    trained_at: str
    seed: int
    skipped: dict[str, tuple[int, int]] = field(default_factory=dict)
    judged: dict[str, Judgement] = field(default_factory=dict)  # enough examples, but the model does not speak
    feature_version: str = FEATURE_VERSION
    sentence_vectors: VectorModel = VectorModel.NONE
    context: ContextFeatures = ContextFeatures.NONE
    min_examples: int = MIN_EXAMPLES

    def features(self, docs: Sequence["Doc"], variant: str = "stacked") -> Any:
        return _features(docs, self.terms, self.rule_codes if variant == "stacked" else [], self.use_vectors,
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

    def summary(self, segments: int | None = None) -> dict[str, Any]:
        """What a run learned, as JSON. ``segments``: the project's respondent segments, which bounds every outlook
        (no learning curve is read beyond the project's own size); the examples when not given."""
        segments = max(segments or 0, self.examples)
        return {
            "trained_at": self.trained_at,
            "examples": self.examples,
            "feature_version": self.feature_version,
            "sentence_vectors": self.sentence_vectors.value,
            "context": self.context.value,
            "segments": segments,
            "codes": {code: _model_summary(m, segments) for code, m in self.models.items()},
            "too_few_examples": {code: {"positives": p, "negatives": n, "needed": max(0, self.min_examples - min(p, n))}
                                 for code, (p, n) in self.skipped.items()},
            "held_back": {code: judgement.to_json(segments) for code, judgement in self.judged.items()},
        }

    # -- keeping models without pickles ------------------------------------------------

    def to_bytes(self) -> bytes:
        """The fitted parameters as an .npz archive: arrays, and one JSON document for the rest."""
        import numpy as np

        meta = {
            "format": PARAMETERS_FORMAT,
            "vocabulary": self.terms.vocabulary if self.terms is not None else [],
            "min_df": self.terms.min_df if self.terms is not None else 1,
            "rule_codes": self.rule_codes,
            "use_vectors": self.use_vectors,
            "examples": self.examples,
            "trained_at": self.trained_at,
            "seed": self.seed,
            "skipped": self.skipped,
            "judged": {code: [j.positives, j.negatives, j.rules_kappa, j.model_kappa, j.margin, [list(point) for point in j.curve]]
                       for code, j in self.judged.items()},
            "min_examples": self.min_examples,
            "feature_version": self.feature_version,
            "sentence_vectors": self.sentence_vectors.value,
            "context": self.context.value,
            "codes": [
                {"code": m.code, "intercept": m.intercept, "positives": m.positives, "negatives": m.negatives, "cv_f1": m.cv_f1,
                 "cv_kappa": m.cv_kappa, "c": m.c, "threshold": m.threshold, "variant": m.variant, "calibration": list(m.calibration),
                 "curve": [list(point) for point in m.curve], "rules_kappa": m.rules_kappa, "margin": m.margin, "role": m.role.value}
                for m in self.models.values()
            ],
        }
        arrays: dict[str, Any] = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
        if self.terms is not None:
            arrays["idf"] = np.asarray(self.terms.idf, dtype=np.float64)
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
                terms = None
                if meta["vocabulary"]:
                    terms = Terms([str(term) for term in meta["vocabulary"]], np.asarray(arrays["idf"], dtype=np.float64), int(meta["min_df"]))
                    if len(terms.idf) != len(terms.vocabulary):
                        raise ValueError(f"{len(terms.idf)} weights for {len(terms.vocabulary)} terms")
                models = {}
                for index, entry in enumerate(meta["codes"]):
                    coef = arrays[f"coef_{index}"]
                    models[entry["code"]] = CodeModel(
                        entry["code"], coef, float(entry["intercept"]), int(entry["positives"]), int(entry["negatives"]),
                        entry["cv_f1"], entry["cv_kappa"], float(entry["c"]), float(entry["threshold"]), str(entry["variant"]),
                        _calibration(entry.get("calibration", (1.0, 0.0))),
                        _curve(entry.get("curve", [])), _optional_float(entry.get("rules_kappa")), _optional_float(entry.get("margin")),
                        Role(entry.get("role", Role.DECIDES.value)),
                    )
                judged = {code: Judgement(int(value[0]), int(value[1]), float(value[2]), float(value[3]), float(value[4]), _curve(value[5]))
                          for code, value in meta.get("judged", {}).items()}
                # runs of older versions: the codes whose rules beat the model, (rules kappa, model kappa)
                judged.update({code: Judgement(0, 0, float(value[0]), float(value[1]), 0.0)
                               for code, value in meta.get("rules_better", {}).items() if code not in judged})
                sentence_vectors = VectorModel(meta.get("sentence_vectors", VectorModel.NONE.value))
                context = ContextFeatures(meta.get("context", ContextFeatures.NONE.value))
        except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
            raise ProjectError(
                f"model run {run} cannot be read ({exc})",
                fix="run 'qualcode train' to fit the models again",
            ) from None
        return cls(
            terms, list(meta["rule_codes"]), bool(meta["use_vectors"]), models, int(meta["examples"]), str(meta["trained_at"]),
            int(meta["seed"]), {code: (int(value[0]), int(value[1])) for code, value in meta["skipped"].items()},
            judged, str(meta["feature_version"]), sentence_vectors, context, int(meta.get("min_examples", MIN_EXAMPLES)),
        )


def _model_summary(m: CodeModel, segments: int) -> dict[str, Any]:
    plateau, more = m.outlook(segments)
    return {"positives": m.positives, "negatives": m.negatives, "cv_f1": m.cv_f1, "cv_kappa": m.cv_kappa, "C": m.c,
            "threshold": m.threshold, "features": m.variant, "calibration": list(m.calibration),
            "curve": [list(point) for point in m.curve], "plateau_kappa": plateau, "more_decisions": more,
            "rules_kappa": m.rules_kappa, "margin": m.margin, "role": m.role.value}


def _curve(value: Any) -> list[tuple[int, float]]:
    return [(int(n), float(k)) for n, k in value]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _rule_matrix(docs: Sequence["Doc"], rule_codes: list[str]) -> Any:
    import numpy as np

    index = {code: i for i, code in enumerate(rule_codes)}
    matrix = np.zeros((len(docs), len(rule_codes)))
    for row, doc in enumerate(docs):
        for suggestion in suggestions_from_doc(doc):
            if suggestion.source == Source.RULES and suggestion.code in index:
                matrix[row, index[suggestion.code]] = suggestion.confidence * RULE_FEATURE_SCALE
    return matrix


def _features(docs: Sequence["Doc"], terms: Terms | None, rule_codes: list[str], use_vectors: bool,
              sentence_vectors: VectorModel = VectorModel.NONE, context: ContextFeatures = ContextFeatures.NONE) -> Any:
    import numpy as np
    from scipy.sparse import csr_matrix, hstack

    parts = [terms.transform(docs) if terms is not None else csr_matrix((len(docs), 0)), csr_matrix(_rule_matrix(docs, rule_codes))]
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
    checkpoint: Callable[[], None] | None = None,
) -> ModelSet:
    """Fit one model per code. ``labels[code][i]`` is 1, 0 or None (unknown) for ``docs[i]``.

    Everything is chosen on the reviewed data alone, by stratified cross-validation: the
    features (lemma n-grams, or those plus every code's rule confidence), C from a small
    grid, and the probability threshold that gives the best kappa. The model is judged by an
    honest estimate (each fold predicted by choices made on the other folds) and speaks for
    its code only when that kappa reaches ``KAPPA_FLOOR`` and, with ``use_rules``, beats the
    code's own rules on the same segments by more than ``MARGIN_ERRORS`` bootstrapped standard
    errors; it then either decides the code or only adds to the rules' yes, whichever agreed
    better. Every other code keeps its rules (``judged`` says why). With ``vectors``, each segment's sentence vector joins the features, and with ``context`` its
    neighbours' vectors (``doc._.qc_context``), down-weighted. ``checkpoint`` is called before each code (a fit
    keeps its lease there). Deterministic for a fixed seed.
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
        return ModelSet(None, codes_for_rules, False, {}, len(labelled), trained_at, seed, counts, sentence_vectors=vectors, context=context,
                        min_examples=min_examples)
    terms = Terms.fit(texts, min_df=2 if len(texts) >= 200 else 1)
    use_vectors = bool(docs) and docs[0].vocab.vectors.shape[0] > 0 and docs[0].vocab.vectors.shape[1] > 0
    models: dict[str, CodeModel] = {}
    skipped: dict[str, tuple[int, int]] = {}
    judged: dict[str, Judgement] = {}
    labelled_docs = [docs[i] for i in labelled]
    matrices = {"text": _features(labelled_docs, terms, [], use_vectors, vectors, context)}
    if codes_for_rules:
        matrices["stacked"] = _features(labelled_docs, terms, codes_for_rules, use_vectors, vectors, context)
    rule_hits = _rule_matrix(labelled_docs, list(rule_codes))
    row_of = {doc_index: row for row, doc_index in enumerate(labelled)}
    for code, values in sorted(labels.items()):
        if checkpoint is not None:
            checkpoint()
        known = [i for i, value in enumerate(values) if value is not None]
        rows = [row_of[i] for i in known]
        y = np.array([values[i] for i in known], dtype=int)
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        if positives < min_examples or negatives < min_examples:
            skipped[code] = (positives, negatives)
            continue
        large = len(y) >= 1000
        splits = list(_folds(large, positives, negatives, seed).split(np.zeros(len(y)), y))
        candidates = []  # (variant, C, out-of-fold probabilities)
        for variant, matrix in matrices.items():
            x = matrix[rows]
            for c in (2.0,) if large else C_GRID:
                candidates.append((variant, c, cross_val_predict(_classifier(c, seed), x, y, cv=splits, method="predict_proba")[:, 1]))
        variant, c, threshold, held_out = _choose(y, candidates, np.ones(len(y), dtype=bool))
        fired = (rule_hits[rows, list(rule_codes).index(code)] > 0).astype(int) if code in rule_codes else np.zeros(len(y), dtype=int)
        rules_kappa = kappa_or_zero(y, fired) if use_rules else 0.0
        # The model either decides the code (a rule's hit too) or only adds to what the rules say: whichever agrees
        # better with the decisions, judged on predictions made without each segment.
        honest = _cross_fitted(y, candidates, splits)
        role, honest = max(((Role.DECIDES, honest), (Role.ADDS, np.maximum(honest, fired))) if use_rules else ((Role.DECIDES, honest),),
                           key=lambda pair: _kappas(y, pair[1]) + (1e-9 if pair[0] == Role.ADDS else 0.0))
        kappa = kappa_or_zero(y, honest)
        f1 = precision_recall_f1(list(y), list(honest))[2] or 0.0
        margin = MARGIN_ERRORS * _paired_error(y, honest, fired, seed) if use_rules else 0.0
        if kappa < KAPPA_FLOOR or kappa - rules_kappa <= margin:
            judged[code] = Judgement(positives, negatives, round(rules_kappa, 4), round(kappa, 4), round(margin, 4),
                                     _learning_curve(matrices[variant][rows], y, c, seed, len(y), kappa))
            continue
        classifier = _classifier(c, seed).fit(matrices[variant][rows], y)
        model = CodeModel(code, classifier.coef_.ravel().copy(), float(classifier.intercept_[0]), positives, negatives,
                          round(f1, 4), round(kappa, 4), c, threshold, variant, rules_kappa=round(rules_kappa, 4), margin=round(margin, 4),
                          role=role)
        model.calibration = _platt(model.confidence(held_out), y, seed)
        model.curve = _learning_curve(matrices[variant][rows], y, c, seed, len(y), kappa)
        models[code] = model
    return ModelSet(
        terms=terms,
        rule_codes=codes_for_rules,
        use_vectors=use_vectors,
        models=models,
        examples=len(labelled),
        trained_at=trained_at,
        seed=seed,
        skipped=skipped,
        judged=judged,
        sentence_vectors=vectors,
        context=context,
        min_examples=min_examples,
    )


def _kappas(y: Any, predicted: Any) -> Any:
    """Cohen's kappa of binary ``predicted`` (one column per candidate, or one vector) against ``y``; 0 where undefined."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    matrix = np.asarray(predicted, dtype=float)
    single = matrix.ndim == 1
    if single:
        matrix = matrix[:, None]
    n = float(len(y))
    true_positive = y @ matrix
    said = matrix.sum(axis=0)
    actual = y.sum()
    observed = (n - said - actual + 2 * true_positive) / n
    expected = (said * actual + (n - said) * (n - actual)) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected < 1.0, (observed - expected) / (1.0 - expected), 0.0)
    return float(kappa[0]) if single else kappa


def _choose(y: Any, candidates: Sequence[tuple[str, float, Any]], mask: Any) -> tuple[str, float, float, Any]:
    """The candidate (features, C) and threshold whose out-of-fold predictions agree best with ``y`` on ``mask``: the
    first best, in the candidates' and thresholds' order."""
    import numpy as np

    best: tuple[float, int, int] | None = None
    thresholds = np.array(THRESHOLDS)
    for index, (_variant, _c, probabilities) in enumerate(candidates):
        kappas = _kappas(y[mask], probabilities[mask][:, None] >= thresholds[None, :])
        top = int(np.argmax(kappas))  # the first of equals
        if best is None or kappas[top] > best[0] + 1e-9:
            best = (float(kappas[top]), index, top)
    assert best is not None
    variant, c, probabilities = candidates[best[1]]
    return variant, c, THRESHOLDS[best[2]], probabilities


def _cross_fitted(y: Any, candidates: Sequence[tuple[str, float, Any]], splits: Sequence[tuple[Any, Any]]) -> Any:
    """Yes/no for every example from choices made without it: each fold is predicted with the features, C and threshold
    chosen on the other folds' out-of-fold predictions. Its kappa is an honest estimate of the whole procedure, where
    choosing on the same predictions would flatter a model of a handful of positives."""
    import numpy as np

    honest = np.zeros(len(y), dtype=int)
    for _train, test in splits:
        mask = np.ones(len(y), dtype=bool)
        mask[test] = False
        _variant, _c, threshold, probabilities = _choose(y, candidates, mask)
        honest[test] = probabilities[test] >= threshold
    return honest


def _paired_error(y: Any, model: Any, rules: Any, seed: int) -> float:
    """The standard error of kappa(model) - kappa(rules) on the same examples, by a paired bootstrap."""
    import numpy as np

    generator = np.random.default_rng(seed)
    y, model, rules = (np.asarray(values, dtype=float) for values in (y, model, rules))
    samples = generator.integers(0, len(y), size=(BOOTSTRAP_ROUNDS, len(y)))
    differences = [_kappas(y[rows], model[rows]) - _kappas(y[rows], rules[rows]) for rows in samples]
    return float(np.std(differences, ddof=1))


def _folds(large: bool, positives: int, negatives: int, seed: int) -> Any:
    """The cross-validation every choice is made by: 5 stratified folds (3 from 1,000 examples), fewer for a small class."""
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(min(3 if large else 5, positives, negatives), shuffle=True, random_state=seed)


def _learning_curve(x: Any, y: Any, c: float, seed: int, n: int, kappa: float) -> list[tuple[int, float]]:
    """Honest cross-validated kappa (threshold chosen on the other folds) of the chosen features and C on stratified shares
    of the examples, and on all of them."""
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
        splits = list(_folds(n >= 1000, positives, negatives, seed).split(np.zeros(len(sub)), sub))
        probabilities = cross_val_predict(_classifier(c, seed), x[keep], sub, cv=splits, method="predict_proba")[:, 1]
        points.append((len(sub), round(_kappas(sub, _cross_fitted(sub, [("", c, probabilities)], splits)), 4)))
    return points + [(n, round(kappa, 4))]


def _fit_curve(curve: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """(a, b) of kappa(n) = a - b / sqrt(n), fitted to the curve by least squares; None with fewer than two points."""
    import numpy as np

    if len(curve) < 2:
        return None
    n = np.array([point[0] for point in curve], dtype=float)
    k = np.array([point[1] for point in curve], dtype=float)
    slope, intercept = np.polyfit(1.0 / np.sqrt(n), k, 1)
    return float(intercept), -float(slope)


def learning_outlook(curve: Sequence[tuple[int, float]], segments: int) -> tuple[float | None, int | None]:
    """Where the learning curve takes a model in this project, and about how many more reviewed segments it needs to
    come within ``CURVE_MARGIN`` of that: (kappa near which it levels off, more segments; 0: more review adds little).

    The curve kappa(n) = a - b / sqrt(n) is read only up to ``segments``, the project's own size: the level is its value
    when every segment is reviewed, never the asymptote a far beyond. A flat or falling curve levels off where it is.
    (None, None): fewer than two points to fit.
    """
    fitted = _fit_curve(curve)
    if fitted is None:
        return None, None
    a, b = fitted
    examples = max(point[0] for point in curve)
    best = max(point[1] for point in curve)
    if b <= 0 or segments <= examples:  # no better with all the examples than with half, or nothing left to review
        return round(best, 2), 0
    level = min(1.0, a - b / segments**0.5)
    needed = examples_to_reach(curve, level - CURVE_MARGIN, segments)
    return round(max(level, best), 2), needed or 0


def examples_to_reach(curve: Sequence[tuple[int, float]], target: float, segments: int) -> int | None:
    """About how many more reviewed segments the learning curve needs to reach ``target`` kappa: 0 when it is there,
    None when it does not within the project's ``segments`` (or the curve cannot say)."""
    fitted = _fit_curve(curve)
    if fitted is None:
        return None
    a, b = fitted
    examples = max(point[0] for point in curve)
    if max(point[1] for point in curve) >= target:
        return 0
    if b <= 0 or a <= target:
        return None
    needed = int(math.ceil((b / (a - target)) ** 2 - 1e-6)) - examples
    return needed if 0 < needed <= segments - examples else None


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


def blend(docs: Sequence["Doc"], models: ModelSet | None, *, min_confidence: float = 0.0) -> list[list[Suggestion]]:
    """Suggestions per doc: rules for codes without a model; the model's probability for trained codes.

    A trained code is suggested when its decision score reaches 0.5 (its own cross-validated
    threshold), or when its rules fired: a model that decides the code then says whether it
    agrees (so a rule the researcher keeps rejecting sinks); a model that only adds leaves the
    rules' yes as it is. The confidence of a code the model speaks for is its calibrated
    probability; ``applies`` carries the decision. ``source`` says what stands behind each.
    """
    scores = models.probabilities(docs) if models is not None else {}
    probabilities = models.calibrated(scores) if models is not None else {}
    results = []
    for row, doc in enumerate(docs):
        rules = {suggestion.code: suggestion for suggestion in suggestions_from_doc(doc)}
        merged = []
        for code, suggestion in rules.items():
            if code in scores and models is not None and models.models[code].role == Role.DECIDES:
                says = bool(scores[code][row] >= SUGGEST_THRESHOLD)
                merged.append(Suggestion(code, round(probabilities[code][row], 3), suggestion.evidence, Source.BOTH, says))
            else:
                merged.append(suggestion)
        for code, values in scores.items():
            if code not in rules and values[row] >= SUGGEST_THRESHOLD:
                merged.append(Suggestion(code, round(probabilities[code][row], 3), [], Source.MODEL, True))
        results.append(sorted((s for s in merged if s.confidence >= min_confidence), key=lambda s: s.code))
    return results


def annotate(nlp: "Language", texts: Iterable["str | Doc"], *, batch_size: int = 256) -> Iterator["Doc"]:
    """Each text (or tokenised Doc carrying its vectors) through the pipeline, in order (``nlp.pipe``), but for the
    sentence-vector component: only the learned models read the vectors, and their features compute the ones a Doc
    lacks a batch at a time (``vectors.doc_vectors``: the same numbers whatever the batch), so a run without models
    computes none, and one with them computes them in batches of the models' size rather than a file's."""
    skip = [name for name in (VECTORS_COMPONENT,) if name in nlp.pipe_names]
    return nlp.pipe(texts, batch_size=batch_size, disable=skip)


def suggestions_for(docs: Sequence["Doc"], models: ModelSet | None, *, min_confidence: float = 0.0) -> list[list[Suggestion]]:
    """The suggestions of annotated Docs: the rules', blended with the models' when given (``blend``)."""
    if models is None:
        return [[item for item in suggestions_from_doc(doc) if item.confidence >= min_confidence] for doc in docs]
    return blend(docs, models, min_confidence=min_confidence)


def suggest(
    nlp: "Language", texts: Iterable["str | Doc"], *, batch_size: int = 256, min_confidence: float = 0.0, models: ModelSet | None = None
) -> list[list[Suggestion]]:
    """Suggestions for each text (or tokenised Doc carrying its vectors), in order, through ``nlp.pipe``; blended with
    learned models when given. Docs are kept one batch at a time: a huge transcript must not hold all its Docs at once."""
    results: list[list[Suggestion]] = []
    batch: list = []
    for doc in annotate(nlp, texts, batch_size=batch_size):
        batch.append(doc)
        if len(batch) == batch_size:
            results.extend(suggestions_for(batch, models, min_confidence=min_confidence))
            batch = []
    results.extend(suggestions_for(batch, models, min_confidence=min_confidence))
    return results
