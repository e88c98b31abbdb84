"""Writing coding results into the project database: one file's result, or a whole Parquet
shard (new transcripts in chunked transactions, changed ones keeping their decisions), then
re-suggesting what other rules or older models suggested."""

from __future__ import annotations

import json

from qualcode.ingest.transcripts import METADATA_FILE, Transcript, merge_metadata, metadata_conflicts
from qualcode.project import Project
from qualcode.run import shards
from qualcode.run.planning import CodeResult, Job, ProgressCallback, Skipped
from qualcode.run.worker import FileResult
from qualcode.store import Store
from qualcode.suggest.spec import WorkerSpec
from qualcode.suggest.training import rescore_undecided, suggest_stored

MERGE_CHUNK = 200  # new transcripts per transaction


def note_warnings(project: Project, relative: str, transcript: Transcript, result: CodeResult) -> None:
    if "role" not in transcript.metadata:
        result.warnings.append(f"{relative}: no 'role' in front matter or {METADATA_FILE}; counted as 'unknown'")
    result.warnings.extend(project.shorten(warning) for warning in transcript.warnings)


class NewTranscripts:
    """New transcripts gathered and written a chunk per transaction: many rows per statement instead of one per segment.

    A transcript is written whole or not at all, so an interrupted run loses at most the chunk
    being gathered (coded again next time), never half a transcript.
    """

    def __init__(self, store: Store, result: CodeResult, size: int = 32) -> None:
        self.store, self.result, self.size = store, result, size
        self.pending: list[tuple] = []

    def add(self, transcript: Transcript, suggestions: list, path: str, version: str) -> None:
        self.pending.append((transcript, suggestions, path, version))
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        inserted = set(self.store.insert_transcripts(self.pending))
        for transcript, _suggestions, _path, _version in self.pending:
            if transcript.id in inserted:
                self.result.imported.append(transcript.id)
                self.result.words += transcript.words
            else:  # written a moment ago by another run
                self.result.unchanged.append(transcript.id)
        self.pending = []

    def __enter__(self) -> "NewTranscripts":
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.flush()


def save_result(project: Project, store: Store, job: Job, outcome: FileResult, csv_metadata: dict[str, dict[str, str]], version: str,
                result: CodeResult, new: NewTranscripts | None = None) -> None:
    """One file's result from the local engine: a changed transcript in one transaction (keeping its decisions),
    a new one through ``new`` when given."""
    relative = job.relative
    transcript = outcome.transcript
    if transcript is None or outcome.suggestions is None:
        result.skipped.append(Skipped(relative, outcome.error.split(": ", 1)[-1] if outcome.error else "unreadable"))
        return
    transcript.metadata = merge_metadata(transcript.file_metadata, csv_metadata.get(transcript.id))
    result.warnings.extend(metadata_conflicts(relative, transcript.file_metadata, csv_metadata.get(transcript.id)))
    note_warnings(project, relative, transcript, result)
    if new is not None and not job.existed:
        new.add(transcript, outcome.suggestions, relative, version)
        return
    saved = store.save_transcript(transcript, outcome.suggestions, pipeline_version=version, path=relative)
    result.retired_with_decisions += saved.retired_with_decisions
    result.ambiguous += saved.ambiguous
    (result.updated if job.existed else result.imported).append(transcript.id)
    result.words += transcript.words


def merge_shard(project: Project, store: Store, shard: str, result: CodeResult, *, remove: bool = False, force: bool = False) -> None:
    """Merge one shard (``merge_rows``; every row checked first, against this project's codes), then, with ``remove``,
    delete it."""
    rows = list(shards.read(shard, project.codebook.codes))  # one shard: at most a batch of files
    merge_rows(project, store, rows, result, force=force)
    if remove:
        shards.remove(shard)


def merge_rows(project: Project, store: Store, rows: list[shards.ShardRow], result: CodeResult, *, force: bool = False) -> None:
    """Merge a batch's rows (a shard's, or sent back by Dask workers): new transcripts in chunked transactions, changed
    ones one by one (keeping their decisions), the ones already in the database left alone, so a batch merged twice
    changes nothing."""
    stored = store.transcript_states([row.transcript_id for row in rows])
    fresh: list[tuple] = []
    for row in rows:
        transcript = row.transcript
        if transcript is None or row.suggestions is None:
            result.skipped.append(Skipped(row.path, row.error.split(": ", 1)[-1] if row.error else "unreadable"))
            continue
        previous = stored.get(transcript.id)
        if previous is not None and previous.content_hash == transcript.content_hash and not force:
            result.unchanged.append(transcript.id)
            continue
        note_warnings(project, row.path, transcript, result)
        if previous is None:
            fresh.append((transcript, row.suggestions, row.path, row.pipeline_version))
            continue
        saved = store.save_transcript(transcript, row.suggestions, pipeline_version=row.pipeline_version, path=row.path)
        result.retired_with_decisions += saved.retired_with_decisions
        result.ambiguous += saved.ambiguous
        result.updated.append(transcript.id)
        result.words += transcript.words
    with NewTranscripts(store, result, MERGE_CHUNK) as new:
        for item in fresh:
            new.add(*item)


def finish(store: Store, spec: WorkerSpec, scored_version: str, result: CodeResult, on_progress: ProgressCallback | None) -> None:
    """Re-suggest what other rules or older models suggested, and note what the suggestions now come from."""
    version = result.pipeline_version
    fresh = set(result.imported) | set(result.updated)
    stale_ids = set(store.stale_transcripts(version))
    suggesting = json.dumps(spec.settings.suggesting_state(), sort_keys=True)
    if store.get_meta("suggesting") not in (None, suggesting):  # vectors, context, min_confidence, language: re-suggest all
        stale_ids.update(store.transcripts())
    stale = [transcript_id for transcript_id in sorted(stale_ids) if transcript_id not in fresh]
    if stale:
        resuggest(store, stale, spec, scored_version, on_progress)
        result.resuggested = stale
    elif spec.model_run is not None and store.get_meta("model_run_scored") != str(spec.model_run):
        # the transcripts this run wrote were suggested with these models already
        result.rescored = rescore_undecided(store, spec, scored_version, skip=fresh)
    store.set_meta("pipeline_version", version)
    store.set_meta("suggesting", suggesting)
    if spec.model_run is not None:
        store.set_meta("model_run_scored", str(spec.model_run))
    result.segments = store.counts()["segments"]


def resuggest(store: Store, transcript_ids: list[str], spec: WorkerSpec, version: str, on_progress: ProgressCallback | None = None) -> None:
    """Recompute the suggestions of stored transcripts (the codebook or pipeline changed), one transaction each."""
    for done, transcript_id in enumerate(transcript_ids, start=1):
        rows = store.codable_segments(transcript_id)
        store.replace_suggestions(transcript_id, list(zip([row.id for row in rows], suggest_stored(store, spec, rows))), pipeline_version=version)
        if on_progress:
            on_progress("resuggest", done, len(transcript_ids))
