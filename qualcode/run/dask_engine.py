"""Coding past one machine: the same pipeline, run by Dask workers, results as Parquet shards.

Each task carries its ``WorkerSpec`` (the codebook's text, the settings, the models' parameters: plain values, sent
with the task rather than scattered once, so a worker that dies takes nothing with it that a new one needs); each
worker builds its pipeline once and keeps it by the codebook's fingerprint. A task codes a batch of files and sends
its rows back to the client, which writes the database: workers need the transcripts, not the project folder. With
``--output parquet:DIR`` a task writes a shard there instead and sends back only a summary; a batch whose shard exists
already (a rerun after a crash) is not coded again. A worker that dies mid-batch is replaced and its batch rerun by
Dask (twice at most); a run the cluster cannot finish ends in one message saying how many files are in and that
`code` again goes on.

dask, distributed and pyarrow are the ``qualcode[dask]`` extra.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from qualcode.errors import ProjectError
from qualcode.ingest.transcripts import merge_metadata
from qualcode.run import shards
from qualcode.run.shards import ShardRow
from qualcode.run.worker import process_files
from qualcode.suggest.spec import WorkerSpec

ProgressCallback = Callable[[str, int, int], None]
IN_FLIGHT_PER_WORKER = 4  # batches queued per worker: enough to keep it busy, few enough to bound memory


@dataclass(frozen=True)
class DaskOptions:
    scheduler: str | None = None  # tcp://HOST:8786 of a running cluster; None: a LocalCluster on this machine
    workers: int = 2  # LocalCluster workers, one thread each
    dashboard: bool = False
    files_per_batch: int = 0  # 0: about eight batches per worker, at most 64 files each
    on_dashboard: Callable[[str], None] | None = None  # told where the dashboard is, once it is served (port 8787 or, when taken, another)


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
    shard: str | None  # where its rows are, when written as a shard; None: they came back in ``rows``
    files: int
    reused: bool
    outcomes: list[tuple[str, str, str | None, list[str]]]  # (shown path, transcript id, error, warnings) per file
    rows: list[ShardRow] | None = None


def code_batch(spec: WorkerSpec, jobs: Sequence[FileJob], location: str | None, version: str) -> BatchReport:
    """On a worker: code a batch of files, its rows sent back (``location`` None) or written as one shard there (or the
    shard a previous run finished found)."""
    name = shards.shard_name([(job.transcript_id, job.content_hash) for job in jobs], version)
    if location is not None and shards.exists(location, name):
        path = f"{location.rstrip('/')}/{name}"
        return BatchReport(path, len(jobs), True, [_outcome(row) for row in shards.read(path)])
    rows = []
    for job, result in zip(jobs, process_files(spec, [Path(job.path) for job in jobs])):
        transcript = result.transcript
        metadata = merge_metadata(transcript.file_metadata, job.metadata) if transcript else dict(job.metadata)
        if transcript is not None:
            transcript.metadata = metadata
        rows.append(ShardRow(job.shown, job.transcript_id, job.content_hash, version, transcript, result.suggestions, metadata, result.error))
    if location is None:
        return BatchReport(None, len(jobs), False, [_outcome(row) for row in rows], rows)
    path = shards.write(location, name, rows)
    return BatchReport(path, len(jobs), False, [_outcome(row) for row in rows])


def _outcome(row: ShardRow) -> tuple[str, str, str | None, list[str]]:
    return row.path, row.transcript_id, row.error, list(row.transcript.warnings) if row.transcript else []


SCHEDULER_SCHEMES = ("tcp://", "tls://", "ws://", "wss://", "ucx://", "inproc://")
WAIT_FOR_WORKERS = 60.0  # seconds a run waits for a scheduler's first worker
CONNECT_TIMEOUT = 30.0  # seconds to reach a scheduler


def check_scheduler(address: str) -> None:
    """A scheduler's address as Dask takes it, checked before anything connects."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address) if address.startswith(SCHEDULER_SCHEMES) else None
        port = parts.port if parts is not None else None
    except ValueError:  # an unclosed IPv6 bracket, a port out of range
        parts, port = None, None
    if parts is None or not parts.hostname or (port is None and not address.startswith("inproc://")):
        raise ProjectError(f"'{address}' is not a Dask scheduler's address", fix="give it as tcp://HOST:PORT, as 'dask scheduler' prints it "
                           "(tcp://10.0.0.5:8786)")


@contextlib.contextmanager
def client_for(options: DaskOptions) -> Iterator[Any]:
    """A Dask client: to the scheduler named (which must have workers), or to a LocalCluster started (and stopped) here."""
    distributed = shards.require("distributed")
    if options.scheduler:
        check_scheduler(options.scheduler)
        try:
            client = distributed.Client(options.scheduler, timeout=f"{CONNECT_TIMEOUT:g}s")
        except (OSError, TimeoutError) as exc:
            raise ProjectError(f"cannot reach the Dask scheduler at {options.scheduler} ({type(exc).__name__})",
                               fix="start it ('dask scheduler' prints its address) and check that this machine can reach that host and port") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
            except (TimeoutError, OSError):
                raise ProjectError(f"the Dask scheduler at {options.scheduler} has no workers (none joined within {WAIT_FOR_WORKERS:.0f} s)",
                                   fix=f"start workers where the transcripts can be read: dask worker {options.scheduler} --nthreads 1") from None
            yield client
        return
    with warnings.catch_warnings():
        # Dask warns "Port 8787 is already in use" on stderr when another cluster's dashboard has it; the dashboard asked
        # for is served on another port, and said below. Without --dashboard the scheduler's own web server (health
        # checks) takes any free port, so nobody else's 8787 is a concern.
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = distributed.LocalCluster(
            n_workers=options.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:8787" if options.dashboard else "127.0.0.1:0", scheduler_kwargs={"dashboard": options.dashboard},
            silence_logs=40,
        )
    try:
        if options.dashboard and options.on_dashboard is not None:
            options.on_dashboard(str(cluster.dashboard_link))
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def run(jobs: Iterable[FileJob], spec: WorkerSpec, options: DaskOptions, location: str | None, version: str,
        on_progress: ProgressCallback | None = None, *, expected: int = 0) -> Iterator[BatchReport]:
    """Code the files on the cluster; yields each batch's report as it is finished, in the order they finish: its rows
    (``location`` None: the client writes them), or the shard a worker wrote to ``location``.

    ``jobs`` may be a generator: batches are taken from it only as workers become free (a few per
    worker in flight), so neither this process nor the scheduler ever holds the whole corpus.
    """
    distributed = shards.require("distributed")
    pending = iter(jobs)
    first = next(pending, None)
    if first is None:
        return
    done = 0
    with client_for(options) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})) or options.workers)
        size = options.files_per_batch or max(1, min(64, expected // (workers * 8) or 1))
        batches = _batches(itertools.chain([first], pending), size)

        def submit(batch: list[FileJob]) -> Any:
            # The spec travels with every task: a scattered copy is lost with the worker that held it.
            return client.submit(code_batch, spec, batch, location, version, pure=False, retries=2)

        in_flight = distributed.as_completed([submit(batch) for batch in itertools.islice(batches, IN_FLIGHT_PER_WORKER * workers)])
        if on_progress:
            on_progress("dask", 0, expected)
        try:
            for future in in_flight:
                report = future.result()
                following = next(batches, None)
                if following is not None:
                    in_flight.add(submit(following))
                done += report.files
                if on_progress:
                    on_progress("dask", done, expected)
                yield report
        except ProjectError:
            raise
        except Exception as exc:  # KilledWorker, a cancelled future, a lost scheduler: the cluster could not finish
            reason = type(exc).__name__ + (f": {str(exc).splitlines()[0][:160]}" if str(exc).strip() else "")
            raise ProjectError(
                f"the Dask cluster could not finish the run ({reason}); {done} files were coded and are kept",
                fix="run the same 'qualcode code' again: it goes on with the files not yet in the project (check the workers' logs if it "
                    "stops again)",
            ) from None
        finally:
            if location is not None:
                _sweep(location)


def _sweep(location: str) -> None:
    """What killed workers left in the shard folder, once their batches' shards are written by others."""
    try:
        shards.sweep_leftovers(location)
    except (OSError, ProjectError):  # the folder cannot be listed now: the next run sweeps it
        pass


def _batches(jobs: Iterator[FileJob], size: int) -> Iterator[list[FileJob]]:
    while batch := list(itertools.islice(jobs, size)):
        yield batch
