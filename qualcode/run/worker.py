"""The work a worker process does on one file: read it, segment it and suggest codes, returning plain rows.

The recipe it follows (``WorkerSpec``: the codebook's text, the settings and the learned models' parameters) is
``suggest.spec``; this module is what an engine (the local process pool, a Dask worker) calls per file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qualcode.errors import TranscriptError
from qualcode.ingest.transcripts import Transcript, read_transcript
from qualcode.suggest.components import REGEX_SECONDS, regex_timeouts
from qualcode.suggest.model import suggest
from qualcode.suggest.spec import WorkerSpec, codable_inputs
from qualcode.suggestion import Suggestion


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
        for pattern, words in regex_timeouts().items():
            transcript.warnings.append(f"{path}: the codebook's REGEX {pattern[:80]!r} took longer than {REGEX_SECONDS:g} s on {words} "
                                       "words, which it was not matched on; simplify it (every REGEX runs with that time limit)")
    except TranscriptError as exc:
        return FileResult(path, error=str(exc))
    except (ValueError, LookupError, TypeError, OSError, RecursionError, MemoryError) as exc:
        # A file no reader foresaw (a library's own limit, a codec's corner): skip it, named, and let the batch go on.
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return FileResult(path, error=f"{path}: could not be read ({type(exc).__name__}: {first}); the other files go on")
    return FileResult(path, transcript, suggestions)
