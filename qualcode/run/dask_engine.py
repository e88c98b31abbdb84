"""Coding past one machine: the same pipeline, run by Dask workers, results as Parquet shards.

Workers receive a ``WorkerSpec`` (the codebook's text, the settings, the models' parameters),
scattered to each worker once; each worker builds its pipeline once and keeps it by the
codebook's fingerprint. A task codes a batch of files and writes one shard; it sends back
only a summary (which files were skipped and why, the warnings), never spaCy objects. A
batch whose shard already exists (a rerun after a crash) is not coded again. A worker that
dies mid-batch is replaced and its batch rerun by Dask.

dask, distributed and pyarrow are the ``qualcode[dask]`` extra.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from qualcode.ingest.transcripts import merge_metadata
from qualcode.run import shards
from qualcode.run.shards import ShardRow
from qualcode.run.worker import process_file
from qualcode.suggest.spec import WorkerSpec

ProgressCallback = Callable[[str, int, int], None]
IN_FLIGHT_PER_WORKER = 4  # batches queued per worker: enough to keep it busy, few enough to bound memory


@dataclass(frozen=True)
class DaskOptions:
    scheduler: str | None = None  # tcp://HOST:8786 of a running cluster; None: a LocalCluster on this machine
    workers: int = 2  # LocalCluster workers, one thread each
    dashboard: bool = False
    files_per_batch: int = 0  # 0: about eight batches per worker, at most 64 files each


def check_installed() -> None:
    """Say which extra to install before any work starts, not after the files were read."""
    for module in ("distributed", "pyarrow", "fsspec"):
        shards.require(module)


@dataclass(frozen=True)
class FileJob:
    path: str  # where workers read the file
    shown: str  # as the project names it in messages and in the database
    transcript_id: str
    content_hash: str
    metadata: dict[str, str] = field(default_factory=dict)  # from metadata.csv, merged over the file's front matter


@dataclass
class BatchReport:
    shard: str
    files: int
    reused: bool
    outcomes: list[tuple[str, str, str | None, list[str]]]  # (shown path, transcript id, error, warnings) per file


def code_batch(spec: WorkerSpec, jobs: Sequence[FileJob], location: str, version: str) -> BatchReport:
    """On a worker: code a batch of files into one shard (or find the shard a previous run finished)."""
    name = shards.shard_name([(job.transcript_id, job.content_hash) for job in jobs], version)
    if shards.exists(location, name):
        path = f"{location.rstrip('/')}/{name}"
        return BatchReport(path, len(jobs), True, [_outcome(row) for row in shards.read(path)])
    rows = []
    for job in jobs:
        result = process_file(spec, Path(job.path))
        transcript = result.transcript
        metadata = merge_metadata(transcript.file_metadata, job.metadata) if transcript else dict(job.metadata)
        if transcript is not None:
            transcript.metadata = metadata
        rows.append(ShardRow(job.shown, job.transcript_id, job.content_hash, version, transcript, result.suggestions, metadata, result.error))
    path = shards.write(location, name, rows)
    return BatchReport(path, len(jobs), False, [_outcome(row) for row in rows])


def _outcome(row: ShardRow) -> tuple[str, str, str | None, list[str]]:
    return row.path, row.transcript_id, row.error, list(row.transcript.warnings) if row.transcript else []


@contextlib.contextmanager
def client_for(options: DaskOptions) -> Iterator[Any]:
    """A Dask client: to the scheduler named, or to a LocalCluster started (and stopped) here."""
    distributed = shards.require("distributed")
    if options.scheduler:
        with distributed.Client(options.scheduler, timeout="30s") as client:
            yield client
        return
    cluster = distributed.LocalCluster(
        n_workers=options.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=":8787" if options.dashboard else None, scheduler_kwargs={"dashboard": options.dashboard}, silence_logs=40,
    )
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def run(jobs: Iterable[FileJob], spec: WorkerSpec, options: DaskOptions, location: str, version: str,
        on_progress: ProgressCallback | None = None, *, expected: int = 0) -> Iterator[BatchReport]:
    """Code the files on the cluster; yields each batch's report as its shard is finished, in the order they finish.

    ``jobs`` may be a generator: batches are taken from it only as workers become free (a few per
    worker in flight), so neither this process nor the scheduler ever holds the whole corpus.
    """
    distributed = shards.require("distributed")
    pending = iter(jobs)
    first = next(pending, None)
    if first is None:
        return
    with client_for(options) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})) or options.workers)
        size = options.files_per_batch or max(1, min(64, expected // (workers * 8) or 1))
        batches = _batches(itertools.chain([first], pending), size)
        shared = client.scatter(spec, broadcast=True, hash=False)

        def submit(batch: list[FileJob]) -> Any:
            return client.submit(code_batch, shared, batch, location, version, pure=False, retries=2)

        in_flight = distributed.as_completed([submit(batch) for batch in itertools.islice(batches, IN_FLIGHT_PER_WORKER * workers)])
        done = 0
        if on_progress:
            on_progress("dask", 0, expected)
        for future in in_flight:
            report = future.result()
            following = next(batches, None)
            if following is not None:
                in_flight.add(submit(following))
            done += report.files
            if on_progress:
                on_progress("dask", done, expected)
            yield report


def _batches(jobs: Iterator[FileJob], size: int) -> Iterator[list[FileJob]]:
    while batch := list(itertools.islice(jobs, size)):
        yield batch
