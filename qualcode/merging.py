"""Writing coding results into the project database: one file's result, or a whole Parquet
shard (new transcripts in chunked transactions, changed ones keeping their decisions), then
re-suggesting what other rules or older models suggested."""

from __future__ import annotations

from qualcode import shards
from qualcode.planning import CodeResult, Job, ProgressCallback, Skipped
from qualcode.project import Project
from qualcode.store import Store
from qualcode.training import rescore_undecided
from qualcode.transcripts import METADATA_FILE, Transcript, merge_metadata
from qualcode.worker import FileResult, WorkerSpec, suggest_texts

MERGE_CHUNK = 200  # new transcripts per transaction


def note_warnings(project: Project, relative: str, transcript: Transcript, result: CodeResult) -> None:
    if "role" not in transcript.metadata:
        result.warnings.append(f"{relative}: no 'role' in front matter or {METADATA_FILE}; counted as 'unknown'")
    result.warnings.extend(project.shorten(warning) for warning in transcript.warnings)


def save_result(project: Project, store: Store, job: Job, outcome: FileResult, csv_metadata: dict[str, dict[str, str]], version: str,
                result: CodeResult) -> None:
    """One file's result from the local engine, in one transaction."""
    relative = project.relative(outcome.path)
    transcript = outcome.transcript
    if transcript is None or outcome.suggestions is None:
        result.skipped.append(Skipped(relative, outcome.error.split(": ", 1)[-1] if outcome.error else "unreadable"))
        return
    transcript.metadata = merge_metadata(transcript.file_metadata, csv_metadata.get(transcript.id))
    note_warnings(project, relative, transcript, result)
    saved = store.save_transcript(transcript, outcome.suggestions, pipeline_version=version, path=relative)
    result.retired_with_decisions += saved.retired_with_decisions
    (result.updated if job.existed else result.imported).append(transcript.id)
    result.words += transcript.words


def merge_shard(project: Project, store: Store, shard: str, result: CodeResult, *, remove: bool = False) -> None:
    """Merge one shard: new transcripts in chunked transactions, changed ones one by one (keeping their decisions),
    the ones already in the database left alone, so a shard merged twice changes nothing."""
    rows = list(shards.read(shard))  # one shard: at most a batch of files
    stored = store.transcript_states([row.transcript_id for row in rows])
    fresh: list[tuple] = []
    for row in rows:
        transcript = row.transcript
        if transcript is None or row.suggestions is None:
            result.skipped.append(Skipped(row.path, row.error.split(": ", 1)[-1] if row.error else "unreadable"))
            continue
        previous = stored.get(transcript.id)
        if previous is not None and previous.content_hash == transcript.content_hash:
            result.unchanged.append(transcript.id)
            continue
        note_warnings(project, row.path, transcript, result)
        if previous is None:
            fresh.append((transcript, row.suggestions, row.path, row.pipeline_version))
            continue
        saved = store.save_transcript(transcript, row.suggestions, pipeline_version=row.pipeline_version, path=row.path)
        result.retired_with_decisions += saved.retired_with_decisions
        result.updated.append(transcript.id)
        result.words += transcript.words
    for start in range(0, len(fresh), MERGE_CHUNK):
        chunk = fresh[start : start + MERGE_CHUNK]
        inserted = set(store.insert_transcripts(chunk))
        for transcript, _suggestions, _path, _version in chunk:
            if transcript.id in inserted:
                result.imported.append(transcript.id)
                result.words += transcript.words
            else:  # merged by another run a moment ago
                result.unchanged.append(transcript.id)
    if remove:
        shards.remove(shard)


def finish(store: Store, spec: WorkerSpec, scored_version: str, result: CodeResult, on_progress: ProgressCallback | None) -> None:
    """Re-suggest what other rules or older models suggested, and note what the suggestions now come from."""
    version = result.pipeline_version
    fresh = set(result.imported) | set(result.updated)
    stale = [transcript_id for transcript_id in store.stale_transcripts(version) if transcript_id not in fresh]
    if stale:
        resuggest(store, stale, spec, scored_version, on_progress)
        result.resuggested = stale
    elif spec.model_run is not None and store.get_meta("model_run_scored") != str(spec.model_run):
        result.rescored = rescore_undecided(store, spec, scored_version)
    store.set_meta("pipeline_version", version)
    if spec.model_run is not None:
        store.set_meta("model_run_scored", str(spec.model_run))
    result.segments = store.counts()["segments"]


def resuggest(store: Store, transcript_ids: list[str], spec: WorkerSpec, version: str, on_progress: ProgressCallback | None = None) -> None:
    """Recompute the suggestions of stored transcripts (the codebook or pipeline changed), one transaction each."""
    for done, transcript_id in enumerate(transcript_ids, start=1):
        rows = store.codable_segments(transcript_id)
        suggestions = suggest_texts(spec, [row.text for row in rows])
        store.replace_suggestions(transcript_id, list(zip([row.id for row in rows], suggestions)), pipeline_version=version)
        if on_progress:
            on_progress("resuggest", done, len(transcript_ids))
