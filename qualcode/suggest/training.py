"""Learning from decisions: fit a model per code on the review decisions, keep it in the
project database, and re-score the segments nobody has decided on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

from qualcode.errors import ProjectError
from qualcode.project import Project
from qualcode.settings import default_coder
from qualcode.store import LeaseTaken, SegmentRow, Store
from qualcode.store.records import holder_text
from qualcode.suggest.labels import training_labels
from qualcode.suggest.llm import apply_answers
from qualcode.suggest.model import PARAMETERS_FORMAT, fit_models
from qualcode.suggest.pipeline import pipeline_version
from qualcode.suggest.spec import WorkerSpec, pipeline_for, suggest_texts
from qualcode.suggest.vector_cache import prune, stored_docs
from qualcode.suggestion import Suggestion


@dataclass
class TrainResult:
    run: int | None
    examples: int
    decisions: int
    models: dict[str, dict[str, Any]]
    too_few: dict[str, dict[str, int]]
    held_back: dict[str, dict[str, Any]] = field(default_factory=dict)  # enough examples, but the model does not speak
    summary: dict[str, Any] = field(default_factory=dict)  # the run's summary, as stored
    rescored: int = 0
    seconds: float = 0.0


FIT_LEASE = "fit"


class FitRunning(ProjectError):
    """Another process is fitting this project's models."""


def train(project: Project, *, seed: int = 0, rescore: bool = True, handed: str | None = None) -> TrainResult:
    """Fit a model per code on the project's review decisions, store it, and re-score undecided segments.

    One fit per project at a time, across machines: the fit holds the project's 'fit' lease (renewed as it goes, and
    expiring if the process dies), and a second is refused naming the first. ``handed``: the holder that took the lease
    for this fit before starting its process (``Lease``).
    """
    started = time.perf_counter()
    settings, store = project.settings, project.store
    try:
        with store.lease(FIT_LEASE, default_coder(settings), handed=handed) as lease:
            result = _train(project, seed, rescore, lease.renew)
    except LeaseTaken as taken:
        raise FitRunning(f"the models are being refitted already ({holder_text(taken.holder)})", path=project.root,
                           fix="wait for that fit to finish; review and code go on with the current models meanwhile") from None
    result.seconds = time.perf_counter() - started
    return result


def _train(project: Project, seed: int, rescore: bool, checkpoint: Callable[[], None]) -> TrainResult:
    settings, codebook, store = project.settings, project.codebook, project.store
    codes = [code.id for code in codebook.codes.values() if not code.children]
    segment_ids, labels, decisions = training_labels(store, codes)
    texts = {row.id: row.text for row in store.codable_segments()}
    nlp = pipeline_for(codebook, settings)
    prune(store, settings)  # once per fit: the cache keeps the vectors of the segments there are now, and no others
    prepared = stored_docs(store, nlp, settings, segment_ids, [texts[segment_id] for segment_id in segment_ids])
    docs = list(nlp.pipe(prepared, batch_size=256))
    checkpoint()
    models = fit_models(docs, labels, rule_codes=[code.id for code in codebook.suggestible()],
                        min_examples=settings.learn_min_examples, seed=seed, vectors=settings.vectors, context=settings.context,
                        checkpoint=checkpoint)
    summary = models.summary(len(texts))
    run = None
    parameters = models.to_bytes()
    if models.models or models.judged:
        run = store.save_model_run(trained_at=models.trained_at, decisions=decisions, summary=summary,
                                   parameters=parameters, format=PARAMETERS_FORMAT)
    result = TrainResult(run, models.examples, decisions, summary["codes"], summary["too_few_examples"], summary["held_back"],
                         summary)
    if run is not None and rescore:
        spec = WorkerSpec.build(codebook, settings, model_run=run, model_parameters=parameters)
        version = f"{pipeline_version(codebook, settings.pipeline)}+model-{run}"
        result.rescored = rescore_undecided(store, spec, version, checkpoint=checkpoint)
        store.set_meta("model_run_scored", str(run))
        apply_answers(project)  # the language model's filed answers go back on the re-scored segments
    return result


def refit_due(project: Project) -> bool:
    """Whether at least ``retrain_after`` decisions came in since the last fit, and no other process is fitting now.

    A project whose latest run cannot be read any more (an old pickled run) is due as soon as it has decisions.
    """
    if not project.settings.retrain_after or not project.has_database or project.read_only:
        return False
    store = project.store
    count = store.training_decisions()
    last = store.latest_model_run()
    if last is not None and not last.readable:
        due = count > 0  # a pickled run from an older qualcode, never read: refit it
    else:
        due = count - (last.decisions if last is not None else 0) >= project.settings.retrain_after
    return due and store.lease_holder(FIT_LEASE) is None


def maybe_retrain(project: Project) -> TrainResult | None:
    """Refit now when ``refit_due`` (and some code has enough examples); None when not due, or another process fits."""
    if not refit_due(project):
        return None
    try:
        result = train(project)
    except FitRunning:  # another process took the lease first: its models will do
        return None
    return result if result.run is not None else None


def rescore_undecided(store: Store, spec: WorkerSpec, version: str, batch: int = 512, *,
                      checkpoint: Callable[[], None] | None = None, skip: Collection[str] = ()) -> int:
    """Re-suggest the segments nobody has decided on with the current models (but those of the transcripts in ``skip``,
    suggested with them already).

    Reviewed segments keep the suggestions their coder saw, so comparing machine and coder
    never scores the models on their own training data.
    """
    rows = [row for row in store.undecided_segments() if row.transcript_id not in skip]
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        if checkpoint is not None:
            checkpoint()
        store.replace_segment_suggestions(list(zip([row.id for row in chunk], suggest_stored(store, spec, chunk))), pipeline_version=version)
    return len(rows)


def suggest_stored(store: Store, spec: WorkerSpec, rows: Sequence[SegmentRow]) -> list[list[Suggestion]]:
    """Suggestions for stored segments, their vectors (and context) read through the project's vector cache."""
    return suggest_texts(spec, stored_docs(store, spec.nlp(), spec.settings, [row.id for row in rows], [row.text for row in rows]))

