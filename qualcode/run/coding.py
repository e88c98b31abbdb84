"""The coding run behind ``qualcode code``: find new or changed transcripts, read and suggest
them in worker processes (this machine's, or a Dask cluster's), write them to the project
database, and re-suggest what the codebook or the models changed."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from qualcode.analysis.counts import suggestion_summary
from qualcode.errors import ProjectError, TranscriptError
from qualcode.project import Project
from qualcode.run import dask_engine, shards
from qualcode.run.dask_engine import DaskOptions, FileJob
from qualcode.run.merging import NewTranscripts, finish, merge_rows, merge_shard, save_result
from qualcode.run.planning import CodeResult, Job, ProgressCallback, Skipped, count_files, given_paths, plan, read_metadata, worker_spec
from qualcode.run.worker import FileResult, process_files
from qualcode.settings import Settings, default_coder
from qualcode.store import Store
from qualcode.suggest.llm import LlmPlan, llm_suggest
from qualcode.suggest.pipeline import pipeline_version
from qualcode.suggest.spec import WorkerSpec, warm
from qualcode.suggest.training import maybe_retrain

__all__ = ["CodeResult", "Skipped", "code", "code_to_shards", "import_results"]

# Below this many bytes to process, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 1_500_000
FILES_PER_TASK = 8  # files a worker reads and suggests at a time (their segments scored by the models together)
SHARDS_FOLDER = "shards"


# -- the local engine: this process, or a pool of forked worker processes ---------------------

_spec: WorkerSpec | None = None  # the pool worker's spec, set once by its initializer


def _init_pool_worker(spec: WorkerSpec) -> None:
    global _spec
    _die_with_parent()
    _spec = spec
    warm(spec)
    _set_collector_aside()  # this process only codes files until the pool ends: nothing to restore


def _pool_task(paths: list[Path]) -> list[FileResult]:
    assert _spec is not None, "the pool initializer sets the spec"
    return process_files(_spec, paths)


def _die_with_parent() -> None:
    """A worker must not outlive a killed `qualcode code`: ask Linux to kill it when its parent dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown is all there is
        pass


def _set_collector_aside() -> tuple[int, int, int]:
    """``_few_collections`` without the restoring; the collector's thresholds before."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    return thresholds


@contextmanager
def _few_collections() -> Iterator[None]:
    """Python's cyclic garbage collector, tuned for a batch of files: everything alive now (spaCy, the pipeline, the
    tables: hundreds of thousands of objects that live as long as the process) is set aside (``gc.freeze``), so that a
    full collection no longer walks it, and collections run every 50,000 allocations rather than every 700. Parsing a
    transcript and suggesting its codes makes many short-lived objects and almost no cycles (about 1,500 cyclic objects
    over a million words), so this costs no memory worth counting; without it the collector took 5-10% of a run.
    The previous settings are restored on leaving."""
    thresholds = _set_collector_aside()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


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
        warm(spec)  # built before the collector is tuned, so that the pipeline is set aside with the rest
        with _few_collections():
            for chunk in _chunks(jobs):
                yield from process_files(spec, chunk)
        return
    forking = "fork" in multiprocessing.get_all_start_methods()
    if forking:
        warm(spec)  # built once, here, and inherited by every worker, rather than built again in each
    context = multiprocessing.get_context("fork" if forking else "spawn")
    # This process unpickles every file's result (thousands of small objects a file): the collector is tuned here too.
    with _few_collections(), ProcessPoolExecutor(workers, mp_context=context, initializer=_init_pool_worker, initargs=(spec,)) as pool:
        for results in pool.map(_pool_task, _chunks(jobs)):
            yield from results


def _chunks(jobs: list[Job]) -> list[list[Path]]:
    """The files a worker takes at a time: enough for the learned models to score their segments together."""
    return [[job.path for job in jobs[start : start + FILES_PER_TASK]] for start in range(0, len(jobs), FILES_PER_TASK)]


# -- the runs -------------------------------------------------------------------------------


def code(project: Project, *, paths: Iterable[str | Path] | None = None, on_progress: ProgressCallback | None = None,
         engine: DaskOptions | None = None, llm_refresh: bool = False, on_llm_plan: Callable[[LlmPlan], None] | None = None,
         force: bool = False) -> CodeResult:
    """Import new or changed transcripts, then (re)suggest codes where the rules or models changed, then, with a language
    model set up, ask it about every segment it has not answered (``on_llm_plan`` hears the host, segments and tokens
    before the first request; ``llm_refresh`` asks the undecided segments again).

    ``engine`` None codes in this process or a pool of its own; DaskOptions on a Dask cluster,
    through Parquet shards merged as they arrive. The language model is asked from this process either way: its server,
    not the client, limits that pass, and the answers are filed in the project database as they arrive.
    """
    settings, codebook = project.settings, project.codebook
    if engine is not None:
        dask_engine.check_installed()
    given = given_paths(project, paths)
    _require_transcripts(project, given, paths)
    result = CodeResult(pipeline_version=pipeline_version(codebook, settings.pipeline))
    store = project.create_store()
    result.retrained = maybe_retrain(project)
    spec, scored_version = worker_spec(project, store, result.warnings)
    csv_metadata = read_metadata(project, given, result)
    segmenting = json.dumps(settings.segmenting_state(), sort_keys=True)
    stored_segmenting = store.get_meta("segmenting")
    if force:
        result.resegmented = ["--force"]
    elif stored_segmenting is not None and stored_segmenting != segmenting:
        before = json.loads(stored_segmenting)
        result.resegmented = [key for key, value in settings.segmenting_state().items() if before.get(key) != value]
    with store.code_lock(default_coder(settings)) as lock:
        on_progress = _renewing(on_progress, lock)  # the lock is kept as the run reports its progress
        if engine is None:
            jobs = list(plan(project, store, given, csv_metadata, result, force=bool(result.resegmented)))
            on_progress("import", 0, len(jobs))
            with NewTranscripts(store, result) as new:
                for done, (job, outcome) in enumerate(zip(jobs, run_local(jobs, spec) if jobs else []), start=1):
                    save_result(project, store, job, outcome, csv_metadata, scored_version, result, new)
                    on_progress("import", done, len(jobs))
        else:
            location = project.database_path.parent / SHARDS_FOLDER
            # Shards an earlier version's crashed run left behind are merged first (merging is idempotent).
            for shard in shards.shard_paths(str(location)) if location.is_dir() else []:
                merge_shard(project, store, shard, result, remove=True)
            _remove_if_empty(location)
            # The workers send their rows back and this process writes them: workers need the transcripts, not the project.
            for report in _on_dask(project, store, given, csv_metadata, result, spec, engine, None, scored_version, on_progress,
                                   force=bool(result.resegmented)):
                merge_rows(project, store, report.rows or [], result, force=bool(result.resegmented))
        finish(store, spec, scored_version, result, on_progress)
        if paths is None or stored_segmenting is None:  # a run over the whole folder: every transcript is segmented this way now
            store.set_meta("segmenting", segmenting)
        if settings.llm is not None:
            result.llm = llm_suggest(project, refresh=llm_refresh, on_plan=on_llm_plan, on_progress=on_progress)
    result.summary = suggestion_summary(store, codebook, orders=dict(settings.groups))
    return result


@dataclass
class DryRun:
    """What `qualcode code` would do, found without writing or sending anything."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    segments: int = 0  # respondent segments in the new and changed files
    llm: LlmPlan | None = None  # what the language model would be asked, stored segments and new ones together


def dry_run(project: Project, *, paths: Iterable[str | Path] | None = None) -> DryRun:
    """The files a run would import, their respondent segments and, with a language model set up, how many requests it
    would send and about how many tokens: read from the files and the database, nothing written, nothing sent."""
    from qualcode.ingest.segmenting import neighbours
    from qualcode.ingest.transcripts import read_transcript
    from qualcode.suggest.chat import check_endpoint, host_of, is_loopback
    from qualcode.suggest.llm import llm_estimate, llm_plan

    settings = project.settings
    if settings.llm is not None:
        check_endpoint(settings.llm)
    given = given_paths(project, paths)
    _require_transcripts(project, given, paths)
    result = CodeResult()
    store = project.store if project.has_database else None
    report = DryRun()
    pairs: list[tuple[str, str | None]] = []
    for job in plan(project, store, given, {}, result):
        (report.changed if job.existed else report.new).append(job.relative)
        try:
            transcript = read_transcript(job.path, settings.segment_options)
        except TranscriptError as exc:
            report.skipped.append(Skipped(job.relative, exc.message))
            continue
        around = neighbours(transcript.segments)
        for segment, (question, _previous) in zip(transcript.segments, around):
            if segment.codable:
                report.segments += 1
                pairs.append((segment.text, transcript.segments[question].text if question is not None else None))
    report.unchanged, report.skipped = len(result.unchanged), result.skipped + report.skipped
    if settings.llm is not None:
        asked, tokens = llm_estimate(project, pairs)
        stored = llm_plan(project)[0] if store is not None else None
        report.llm = LlmPlan(host_of(settings.llm.endpoint), settings.llm.model, asked + (stored.segments if stored else 0),
                             stored.cached if stored else 0, tokens + (stored.tokens if stored else 0), is_loopback(settings.llm.endpoint))
    return report


def _renewing(on_progress: ProgressCallback | None, lock: Any) -> ProgressCallback:
    """A progress callback that also renews the run's lock (a server's lease; a file lock renews nothing)."""

    def report(stage: str, done: int, total: int) -> None:
        lock.renew()
        if on_progress is not None:
            on_progress(stage, done, total)

    return report


def _require_transcripts(project: Project, given: list[Path], paths: Iterable[str | Path] | None) -> None:
    if not paths and not project.transcripts_dir.is_dir():
        raise ProjectError(
            f"no '{project.settings.transcripts}' folder in the project, so there is nothing to code",
            path=project.root,
            fix=f"create {project.settings.transcripts}/ and put the interview files in it (txt, md, docx, vtt, srt), "
                "or name files and folders: qualcode code PATH...",
        )


def _on_dask(project: Project, store: Store | None, given: list[Path], csv_metadata: dict[str, dict[str, str]], result: CodeResult,
             spec: WorkerSpec, engine: DaskOptions, location: str | None, version: str, on_progress: ProgressCallback | None,
             force: bool = False) -> Iterator:
    """Plan and code on the cluster at once: files are hashed and sent while workers code the earlier ones."""
    total = count_files(given)
    progress = {"unchanged": 0}

    def unchanged() -> None:
        progress["unchanged"] += 1

    jobs = (
        FileJob(str(job.path), job.relative, job.path.stem, job.content_hash, csv_metadata.get(job.path.stem, {}))
        for job in plan(project, store, given, csv_metadata, result, on_unchanged=unchanged, force=force)
    )

    def report_progress(stage: str, done: int, _total: int) -> None:
        if on_progress:
            on_progress(stage, done + progress["unchanged"], total)

    yield from dask_engine.run(jobs, spec, engine, location, version, report_progress, expected=total)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not there, or shards still in it (from another process): leave it
        pass


def code_to_shards(project: Project, location: str, *, paths: Iterable[str | Path] | None = None, engine: DaskOptions,
                   on_progress: ProgressCallback | None = None) -> CodeResult:
    """Code every transcript file on a Dask cluster into Parquet shards at ``location``, without touching the
    project database (a cluster that cannot reach it); 'qualcode import-results' merges them later."""
    dask_engine.check_installed()
    shards.check_location(location)
    settings, codebook = project.settings, project.codebook
    given = given_paths(project, paths)
    _require_transcripts(project, given, paths)
    result = CodeResult(pipeline_version=pipeline_version(codebook, settings.pipeline))
    store = None
    if project.has_database:
        try:
            store = project.store
        except ProjectError as exc:
            result.warnings.append(f"the project database cannot be reached ({exc.message}); suggestions come from the codebook's rules only")
    spec, scored_version = worker_spec(project, store, result.warnings)
    csv_metadata = read_metadata(project, given, result)
    for report in _on_dask(project, None, given, csv_metadata, result, spec, engine, location, scored_version, on_progress):
        if report.shard is not None:
            result.shards.append(report.shard)
        for shown, transcript_id, error, warnings in report.outcomes:
            if error is not None:
                result.skipped.append(Skipped(shown, error.split(": ", 1)[-1]))
            else:
                result.imported.append(transcript_id)
                result.warnings.extend(project.shorten(warning) for warning in warnings)
    return result


def import_results(project: Project, location: str, *, on_progress: ProgressCallback | None = None) -> CodeResult:
    """Merge Parquet shards made elsewhere ('qualcode code --engine dask --output parquet:DIR') into the project database."""
    settings, codebook = project.settings, project.codebook
    paths = shards.shard_paths(location)
    if not paths:
        raise ProjectError("no shards in this folder", path=location, fix="give the --output folder of a 'qualcode code --engine dask' run")
    for path in paths:  # every shard checked before anything is written: one bad shard merges nothing
        for _row in shards.read(path, codebook.codes):
            pass
    result = CodeResult(pipeline_version=pipeline_version(codebook, settings.pipeline))
    store = project.create_store()
    spec, scored_version = worker_spec(project, store, result.warnings)
    with store.code_lock(default_coder(settings)):
        if on_progress:
            on_progress("merge", 0, len(paths))
        for done, path in enumerate(paths, start=1):
            merge_shard(project, store, path, result)
            if on_progress:
                on_progress("merge", done, len(paths))
        finish(store, spec, scored_version, result, on_progress)
    result.summary = suggestion_summary(store, codebook, orders=dict(settings.groups))
    return result
