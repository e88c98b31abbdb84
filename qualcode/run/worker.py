"""The work a worker process does on one file: read it, segment it and suggest codes, returning plain rows.

The recipe it follows (``WorkerSpec``: the codebook's text, the settings and the learned models' parameters) is
``suggest.spec``; this module is what an engine (the local process pool, a Dask worker) calls per file, or per few files
(``process_files``: the learned models score their segments together).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from qualcode.errors import TranscriptError
from qualcode.ingest.transcripts import Transcript, read_transcript
from qualcode.suggest.components import REGEX_SECONDS, regex_timeouts
from qualcode.suggest.model import annotate, suggest, suggestions_for
from qualcode.suggest.spec import WorkerSpec, codable_inputs
from qualcode.suggestion import Suggestion

if TYPE_CHECKING:
    from spacy.tokens import Doc

MODEL_BATCH = 256  # segments the learned models score in one call
# what skips one file, named, while the batch goes on: a transcript's own problem, or one no reader foresaw (a
# library's own limit, a codec's corner)
_SKIPPED = (TranscriptError, ValueError, LookupError, TypeError, OSError, RecursionError, MemoryError)


@dataclass
class FileResult:
    """One file's outcome: the segmented transcript and a list of suggestions per codable segment, or why it was skipped."""

    path: Path
    transcript: Transcript | None = None
    suggestions: list[list[Suggestion]] | None = None
    error: str | None = None


def process_file(spec: WorkerSpec, path: Path) -> FileResult:
    """Read, segment and suggest one transcript file."""
    try:
        transcript = read_transcript(path, spec.settings.segment_options)
        suggestions = suggest(spec.nlp(), codable_inputs(spec, transcript), min_confidence=spec.settings.min_confidence,
                              models=spec.models())
        _note_regex_timeouts(path, transcript)
    except _SKIPPED as exc:
        return _skipped(path, exc)
    return FileResult(path, transcript, suggestions)


def process_files(spec: WorkerSpec, paths: Sequence[Path]) -> list[FileResult]:
    """``process_file`` for several files, in order, with the learned models scoring their segments in batches of
    ``MODEL_BATCH`` across files: a model call costs milliseconds whatever its size, and made per file (a dozen segments)
    it took most of a run with models. Each file still goes through the pipeline alone (a REGEX's time limit, a file no
    reader foresaw, are that file's), and no more than a batch of Docs is held at once."""
    models = spec.models()
    if models is None or len(paths) < 2:
        return [process_file(spec, path) for path in paths]
    results: list[FileResult] = []
    pending: list[tuple[int, Doc]] = []  # (index into results, Doc) not yet scored

    def score() -> None:
        try:
            found = suggestions_for([doc for _index, doc in pending], models, min_confidence=spec.settings.min_confidence)
        except (ValueError, LookupError, TypeError, MemoryError) as exc:
            raise _ModelsFailed from exc
        for (index, _doc), suggestions in zip(pending, found):
            results[index].suggestions.append(suggestions)  # type: ignore[union-attr]
        pending.clear()

    try:
        for path in paths:
            index = len(results)
            try:
                transcript = read_transcript(path, spec.settings.segment_options)
                results.append(FileResult(path, transcript, []))
                for doc in annotate(spec.nlp(), codable_inputs(spec, transcript)):
                    pending.append((index, doc))
                    if len(pending) >= MODEL_BATCH:
                        score()
                _note_regex_timeouts(path, transcript)
            except _SKIPPED as exc:  # this file is skipped, named: what was staged or scored of it goes
                del results[index:]
                pending[:] = [item for item in pending if item[0] != index]
                results.append(_skipped(path, exc))
        score()
    except _ModelsFailed:
        # The models tripped on some file's segments: each file alone, so that only that one is skipped.
        return [process_file(spec, path) for path in paths]
    return results


class _ModelsFailed(Exception):
    """The learned models failed on a batch that may hold several files' segments."""


def _note_regex_timeouts(path: Path, transcript: Transcript) -> None:
    for pattern, words in regex_timeouts().items():
        transcript.warnings.append(f"{path}: the codebook's REGEX {pattern[:80]!r} took longer than {REGEX_SECONDS:g} s on {words} "
                                   "words, which it was not matched on; simplify it (every REGEX runs with that time limit)")


def _skipped(path: Path, exc: BaseException) -> FileResult:
    if isinstance(exc, TranscriptError):
        return FileResult(path, error=str(exc))
    # A file no reader foresaw (a library's own limit, a codec's corner): skip it, named, and let the batch go on.
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return FileResult(path, error=f"{path}: could not be read ({type(exc).__name__}: {first}); the other files go on")
