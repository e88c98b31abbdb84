"""The active review order: the segments the machine is least sure of first, where a decision teaches most.

A segment's score is the mean, over the codes the machine can suggest, of how unsure it is about
each: ``1 - |2p - 1|`` for a code with a learned model (p its probability: 1 at p = 0.5, 0 at 0 or
1), and for a code without one yet (a cold code) 1 where its rules fire; a code nobody has applied
yet also counts where the segment's sentence vector comes closest to the code's own text (label,
description, include, examples and terms), so that the first examples of a new code are looked
at early, rules or not. Once a code has an example, the search by its text stops: on the Scrum
themes, searching on for rare codes took the corpus kappa at 50% reviewed from 0.53 to 0.40. Scores come from the models fitted when the review starts
(review refits them first once ``retrain_after`` decisions came in).

`benchmarks/quality.py` measures what it buys: from the start it is mixed (it costs on the Scrum
themes at a fifth reviewed); after a random fifth it pays on two data sets there and is level on
the third, which is why
review turns to it by itself from a fifth reviewed (``review.ACTIVE_AFTER``).
"""

from __future__ import annotations

from typing import Any, Container, Mapping, Sequence

from qualcode.codebook import Code
from qualcode.project import Project
from qualcode.run.planning import worker_spec
from qualcode.suggest.pipeline import suggestions_from_doc
from qualcode.suggest.vector_cache import stored_docs
from qualcode.vocabulary import VectorModel, Verdict

BATCH = 256
# A cold code counts for the segments whose text comes closest to its own: the top tenth, from 0 at its edge to 1 at
# the very closest. Counting every segment by its rank drowned the models' uncertainty on the other codes.
COLD_TOP = 0.1


def code_text(code: Code) -> str:
    """What a code is about, in words: everything the codebook says of it but what it excludes."""
    return " ".join([code.label, code.description, code.include, *code.examples, *code.keywords, *code.phrases, *code.exact])


def cold_similarity(codes: Sequence[Code], segment_vectors: Any, vectors: VectorModel) -> dict[str, list[float]]:
    """Per code, how near each segment (a row of ``segment_vectors``) comes to the code's text, by the cosine of their
    vectors: 1 for the closest segment, falling to 0 at the edge of the closest ``COLD_TOP`` of them, 0 beyond (ties shared)."""
    if vectors == VectorModel.NONE or not codes or not len(segment_vectors):
        return {}
    import numpy as np
    from scipy.stats import rankdata

    from qualcode.suggest.vectors import load_vectors

    table = load_vectors(vectors)
    targets = np.vstack([table.text_vector(code_text(code)) for code in codes])
    cosines = segment_vectors @ targets.T
    ranks = (rankdata(cosines, axis=0) - 1) / max(1, len(segment_vectors) - 1)
    ranks = np.clip(1.0 - (1.0 - ranks) / COLD_TOP, 0.0, 1.0)
    return {code.id: ranks[:, column].tolist() for column, code in enumerate(codes)}


def uncertainty_scores(project: Project, texts: Sequence[str], segment_ids: Sequence[int] | None = None) -> list[float]:
    """How unsure the current rules and models are about each text (0: sure of every code; 1: of none). With the
    stored segments' ids (``segment_ids[i]`` holds ``texts[i]``), their vectors come from the project's cache and the
    models read their context."""
    spec, _version = worker_spec(project, project.store)
    models = spec.models()
    trained = models.models if models is not None else {}
    vectors = project.settings.vectors
    leaves = [code for code in project.codebook.codes.values() if not code.children]
    codes = [code.id for code in leaves if code.has_rules or code.id in trained or (vectors != VectorModel.NONE and code_text(code).strip())]
    if not codes:
        return [0.0] * len(texts)
    applied = {code for (_segment, code, _coder), standing in project.store.latest_decisions().items() if Verdict(standing.verdict).applies}
    cold = [code for code in leaves if code.id in codes and code.id not in trained and code.id not in applied]
    nlp = spec.nlp()
    probabilities: dict[str, list[float]] = {}
    fired: list[set[str]] = []
    vector_rows: list[Any] = []
    for start in range(0, len(texts), BATCH):
        inputs: Sequence[Any] = texts[start : start + BATCH]
        if segment_ids is not None:
            inputs = stored_docs(project.store, nlp, project.settings, segment_ids[start : start + BATCH], inputs)
        batch = list(nlp.pipe(inputs, batch_size=BATCH))
        for code, values in (models.probabilities(batch) if models is not None else {}).items():
            probabilities.setdefault(code, []).extend(values)
        fired.extend({suggestion.code for suggestion in suggestions_from_doc(doc)} for doc in batch)
        if cold and vectors != VectorModel.NONE:
            from qualcode.suggest.vectors import doc_vectors

            vector_rows.append(doc_vectors(batch, vectors))  # the vectors alone: every Doc at once could be large
    similarity = {}
    if vector_rows:
        import numpy as np

        similarity = cold_similarity(cold, np.vstack(vector_rows), vectors)
    return [segment_uncertainty(codes, probabilities, row, fired[row], similarity) for row in range(len(texts))]


def segment_uncertainty(codes: Sequence[str], probabilities: Mapping[str, Sequence[float]], row: int, fired: Container[str],
                        similarity: Mapping[str, Sequence[float]] | None = None) -> float:
    """One segment's score: the mean over ``codes`` of 1 - |2p - 1| where a model gives p (``probabilities[code][row]``),
    else (a cold code) 1 where its rules fired on it, else its similarity rank (``similarity[code][row]``), else 0."""
    total = 0.0
    for code in codes:
        if code in probabilities:
            total += 1.0 - abs(2.0 * probabilities[code][row] - 1.0)
        elif code in fired:
            total += 1.0
        elif similarity and code in similarity:
            total += similarity[code][row]
    return total / len(codes) if codes else 0.0
