"""The coding run behind ``qualcode code``: find new or changed transcripts, read and suggest
them in worker processes, write each in one transaction, and re-suggest what the codebook
or the models changed."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from qualcode.analysis import SuggestionSummary, suggestion_summary
from qualcode.pipeline import pipeline_version
from qualcode.project import Project
from qualcode.settings import Settings, default_coder
from qualcode.store import Store
from qualcode.training import TrainResult, maybe_retrain, rescore_undecided
from qualcode.transcripts import METADATA_FILE, discover, file_hash, load_metadata, merge_metadata
from qualcode.worker import FileResult, WorkerSpec, process_file, suggest_texts, warm

# Below this many bytes to process, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 1_500_000

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class CodeResult:
    imported: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    resuggested: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    words: int = 0
    segments: int = 0
    retired_with_decisions: int = 0
    pipeline_version: str = ""
    retrained: TrainResult | None = None
    rescored: int = 0
    summary: SuggestionSummary | None = None  # suggested codes by role, over the whole project


@dataclass(frozen=True)
class Job:
    path: Path
    size: int


# -- the local engine: this process, or a pool of forked worker processes ---------------------

_spec: WorkerSpec | None = None  # the pool worker's spec, set once by its initializer


def _init_pool_worker(spec: WorkerSpec) -> None:
    global _spec
    _die_with_parent()
    _spec = spec
    warm(spec)


def _pool_task(path: Path) -> FileResult:
    assert _spec is not None, "the pool initializer sets the spec"
    return process_file(_spec, path)


def _die_with_parent() -> None:
    """A worker must not outlive a killed `qualcode code`: ask Linux to kill it when its parent dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown is all there is
        pass


def worker_count(settings: Settings, total_bytes: int) -> int:
    if settings.workers:
        return settings.workers
    if total_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def run_local(jobs: list[Job], spec: WorkerSpec) -> Iterator[FileResult]:
    """Each job's result, in order: in this process for small batches, else in a pool of worker processes."""
    workers = worker_count(spec.settings, sum(job.size for job in jobs))
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            yield process_file(spec, job.path)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_pool_worker, initargs=(spec,)) as pool:
        yield from pool.map(_pool_task, [job.path for job in jobs], chunksize=4)


# -- the run ------------------------------------------------------------------------------


def code(project: Project, *, paths: Iterable[str | Path] | None = None, on_progress: ProgressCallback | None = None) -> CodeResult:
    """Import new or changed transcripts, then (re)suggest codes where the rules or models changed."""
    settings, codebook = project.settings, project.codebook
    version = pipeline_version(codebook, settings.pipeline)
    result = CodeResult(pipeline_version=version)
    store = project.create_store()
    result.retrained = maybe_retrain(project)
    run = store.latest_model_run(parameters=True)
    usable = run is not None and run.readable and run.parameters is not None
    model_run = run.id if run is not None and usable else None
    spec = WorkerSpec.build(codebook, settings, model_run=model_run, model_parameters=run.parameters if run is not None and usable else None)
    models = spec.models()  # read (and so check) the stored models here, before any worker does
    scored_version = f"{version}+model-{model_run}" if model_run else version

    given = [Path(p) if Path(p).is_absolute() else project.root / p for p in (paths or [project.transcripts_dir])]
    files, unsupported = discover(given)
    result.skipped.extend(Skipped(project.relative(path), reason) for path, reason in unsupported)
    csv_metadata = _metadata(project, given, result)

    with store.code_lock(default_coder(settings)):
        known = store.transcripts()
        jobs = _plan(project, store, files, known, csv_metadata, result)
        if on_progress:
            on_progress("import", 0, len(jobs))
        for done, outcome in enumerate(run_local(jobs, spec) if jobs else [], start=1):
            _save(project, store, outcome, known, csv_metadata, scored_version, result)
            if on_progress:
                on_progress("import", done, len(jobs))

        fresh = set(result.imported) | set(result.updated)
        stale = [transcript_id for transcript_id in store.stale_transcripts(version) if transcript_id not in fresh]
        if stale:
            resuggest(store, stale, spec, scored_version, on_progress)
            result.resuggested = stale
        elif models is not None and store.get_meta("model_run_scored") != str(model_run):
            result.rescored = rescore_undecided(store, spec, scored_version)
        store.set_meta("pipeline_version", version)
        if model_run:
            store.set_meta("model_run_scored", str(model_run))
        result.segments = store.counts()["segments"]
    result.summary = suggestion_summary(store, codebook, orders=dict(settings.groups))
    return result


def _metadata(project: Project, given: list[Path], result: CodeResult) -> dict[str, dict[str, str]]:
    """Attributes from the metadata.csv of the transcripts folder and of every folder given."""
    csv_metadata: dict[str, dict[str, str]] = {}
    metadata_files = {project.transcripts_dir / METADATA_FILE}
    metadata_files.update((path if path.is_dir() else path.parent) / METADATA_FILE for path in given)
    for metadata_file in sorted(metadata_files):
        rows, warnings = load_metadata(metadata_file)
        result.warnings.extend(project.shorten(warning) for warning in warnings)
        for transcript_id, values in rows.items():
            csv_metadata.setdefault(transcript_id, {}).update(values)
    return csv_metadata


def _plan(project: Project, store: Store, files: list[Path], known: dict, csv_metadata: dict[str, dict[str, str]], result: CodeResult) -> list[Job]:
    """The files to process: new or changed ones. Unchanged files only get their metadata refreshed."""
    settings = project.settings
    jobs: list[Job] = []
    seen_ids: dict[str, Path] = {}
    for path in files:
        transcript_id = path.stem
        relative = project.relative(path)
        if transcript_id in seen_ids:
            result.skipped.append(
                Skipped(relative, f"same transcript id '{transcript_id}' as {project.relative(seen_ids[transcript_id])}; rename one of them")
            )
            continue
        seen_ids[transcript_id] = path
        try:
            size = path.stat().st_size
            if size > settings.max_transcript_mb * 1024 * 1024:
                result.skipped.append(Skipped(relative, (
                    f"{size / 1024 / 1024:.0f} MB, larger than max_transcript_mb ({settings.max_transcript_mb} MB). "
                    "Fix: split it, or raise max_transcript_mb in qualcode.yaml"
                )))
                continue
            digest = file_hash(path)
        except OSError as exc:
            result.skipped.append(Skipped(relative, f"cannot read ({exc.strerror})"))
            continue
        stored = known.get(transcript_id)
        if stored is not None and stored.content_hash == digest:
            merged = merge_metadata(stored.file_metadata, csv_metadata.get(transcript_id))
            if merged != stored.metadata:
                store.set_metadata(transcript_id, merged)
            result.unchanged.append(transcript_id)
            continue
        jobs.append(Job(path, size))
    return jobs


def _save(project: Project, store: Store, outcome: FileResult, known: dict, csv_metadata: dict[str, dict[str, str]],
          version: str, result: CodeResult) -> None:
    relative = project.relative(outcome.path)
    transcript = outcome.transcript
    if transcript is None or outcome.suggestions is None:
        result.skipped.append(Skipped(relative, outcome.error.split(": ", 1)[-1] if outcome.error else "unreadable"))
        return
    transcript.metadata = merge_metadata(transcript.file_metadata, csv_metadata.get(transcript.id))
    if "role" not in transcript.metadata:
        result.warnings.append(f"{relative}: no 'role' in front matter or {METADATA_FILE}; counted as 'unknown'")
    result.warnings.extend(project.shorten(warning) for warning in transcript.warnings)
    existed = transcript.id in known
    saved = store.save_transcript(transcript, outcome.suggestions, pipeline_version=version, path=relative)
    result.retired_with_decisions += saved.retired_with_decisions
    (result.updated if existed else result.imported).append(transcript.id)
    result.words += transcript.words


def resuggest(store: Store, transcript_ids: list[str], spec: WorkerSpec, version: str, on_progress: ProgressCallback | None = None) -> None:
    """Recompute the suggestions of stored transcripts (the codebook or pipeline changed), one transaction each."""
    for done, transcript_id in enumerate(transcript_ids, start=1):
        rows = store.codable_segments(transcript_id)
        suggestions = suggest_texts(spec, [row.text for row in rows])
        store.replace_suggestions(transcript_id, list(zip([row.id for row in rows], suggestions)), pipeline_version=version)
        if on_progress:
            on_progress("resuggest", done, len(transcript_ids))
