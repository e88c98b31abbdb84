"""What a coding run has to do: which files are new or changed, their metadata, and what
every worker needs. Files are examined as they are found and compared with the database a
chunk at a time, so planning a run over a huge folder never holds the folder in memory."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from qualcode.analysis.counts import SuggestionSummary
from qualcode.errors import ProjectError
from qualcode.ingest.transcripts import METADATA_FILE, file_hash, load_metadata, merge_metadata, metadata_conflicts, walk
from qualcode.project import Project
from qualcode.store import Store
from qualcode.suggest.llm import LlmReport
from qualcode.suggest.pipeline import pipeline_version
from qualcode.suggest.spec import WorkerSpec
from qualcode.suggest.training import TrainResult

ProgressCallback = Callable[[str, int, int], None]
CHUNK = 500  # files compared with the database at once


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
    ambiguous: int = 0  # re-imported segments that could be several old ones with different decisions
    pipeline_version: str = ""
    retrained: TrainResult | None = None
    rescored: int = 0
    summary: SuggestionSummary | None = None  # suggested codes by role, over the whole project
    shards: list[str] = field(default_factory=list)  # written by a run that codes into shards only
    llm: LlmReport | None = None  # what the language model was asked, when one is set up
    resegmented: list[str] = field(default_factory=list)  # the settings whose change re-read every transcript ('--force': asked)


@dataclass(frozen=True)
class Job:
    """A file to read and suggest: new, or changed since it was imported."""

    path: Path
    size: int
    content_hash: str
    relative: str  # the path as the project names it (Project.relative), found once while planning
    existed: bool = False  # an earlier version is in the database (its decisions are kept)


def given_paths(project: Project, paths: Iterable[str | Path] | None) -> list[Path]:
    return [Path(p) if Path(p).is_absolute() else project.root / p for p in (paths or [project.transcripts_dir])]


def read_metadata(project: Project, given: list[Path], result: CodeResult) -> dict[str, dict[str, str]]:
    """Attributes from the metadata.csv of the transcripts folder and of every folder given."""
    csv_metadata: dict[str, dict[str, str]] = {}
    if not project.holds(project.transcripts_dir):  # a setting, unlike a path typed for this run: say where it leads
        result.warnings.append(f"transcripts: in qualcode.yaml points outside the project ({project.transcripts_dir}); imported as set, "
                               "and its text will be in the exports")
    metadata_files = {project.transcripts_dir / METADATA_FILE}
    metadata_files.update((path if path.is_dir() else path.parent) / METADATA_FILE for path in given)
    for metadata_file in sorted(metadata_files):
        rows, warnings = load_metadata(metadata_file)
        result.warnings.extend(project.shorten(warning) for warning in warnings)
        for transcript_id, values in rows.items():
            csv_metadata.setdefault(transcript_id, {}).update(values)
    return csv_metadata


def count_files(given: list[Path]) -> int:
    """How many transcript files a run will look at (a progress bar's total), without reading any."""
    return sum(1 for _path, reason in walk(given) if reason is None)


def plan(project: Project, store: Store | None, given: list[Path], csv_metadata: dict[str, dict[str, str]], result: CodeResult,
         on_unchanged: Callable[[], None] | None = None, *, force: bool = False) -> Iterator[Job]:
    """The files to process, as they are found: new or changed ones (with ``force``, every one: the settings that shape
    segments changed, or the researcher asked). Unchanged files only get their metadata refreshed; skipped ones are
    added to ``result`` with the reason."""
    seen: dict[str, str] = {}
    pending: list[tuple[Path, str, int, str, str]] = []
    for path, reason in walk(given):
        relative = project.relative(path)
        if reason is not None:
            result.skipped.append(Skipped(relative, reason))
            continue
        transcript_id = path.stem
        if transcript_id in seen:
            result.skipped.append(Skipped(relative, f"same transcript id '{transcript_id}' as {seen[transcript_id]}; rename one of them"))
            continue
        seen[transcript_id] = relative
        examined = _examine(project, path, relative, result)
        if examined is None:
            continue
        pending.append((path, transcript_id, *examined, relative))
        if len(pending) >= CHUNK:
            yield from _decide(project, store, pending, csv_metadata, result, on_unchanged, force)
            pending = []
    yield from _decide(project, store, pending, csv_metadata, result, on_unchanged, force)


def _examine(project: Project, path: Path, relative: str, result: CodeResult) -> tuple[int, str] | None:
    """The file's size and content hash, or None (with the reason in ``result``) when it must not be read."""
    limit = project.settings.max_transcript_mb * 1024 * 1024
    if any(0xDC80 <= ord(character) <= 0xDCFF for character in str(path)):  # bytes that are not UTF-8, kept by Python as surrogates
        result.skipped.append(Skipped(relative.encode("utf-8", "replace").decode("utf-8"),
                                      "its name is not valid UTF-8 text, so it cannot be a transcript id. Fix: rename the file"))
        return None
    try:
        if path.is_symlink():
            # Following a link to another folder of interviews is legitimate; its text goes into the project and its
            # exports, so say where it leads when that is outside the project.
            if not project.holds(path):  # a link loop stays where it stands; os.stat below says what it is
                result.warnings.append(f"{relative}: a link to {os.path.realpath(path)}, outside the project; imported, and its text will be "
                                       "in the exports")
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            # A FIFO would block forever and a device never ends (st_size says 0): only ordinary files are read.
            result.skipped.append(Skipped(relative, "not an ordinary file (a device, pipe or socket); qualcode reads only files"))
            return None
        if status.st_size > limit:
            result.skipped.append(Skipped(relative, (
                f"{status.st_size / 1024 / 1024:.0f} MB, larger than max_transcript_mb ({project.settings.max_transcript_mb} MB). "
                "Fix: split it, or raise max_transcript_mb in qualcode.yaml"
            )))
            return None
        return status.st_size, file_hash(path)
    except OSError as exc:
        reason = "a symbolic link loop; there is no file behind it" if exc.errno == errno.ELOOP else f"cannot read ({exc.strerror})"
        result.skipped.append(Skipped(relative, reason))
        return None


def _decide(project: Project, store: Store | None, pending: list[tuple[Path, str, int, str, str]], csv_metadata: dict[str, dict[str, str]],
            result: CodeResult, on_unchanged: Callable[[], None] | None, force: bool) -> Iterator[Job]:
    stored = store.transcript_states([item[1] for item in pending]) if store is not None and pending else {}
    for path, transcript_id, size, digest, relative in pending:
        previous = stored.get(transcript_id)
        if previous is not None and previous.content_hash == digest and not force:
            result.warnings.extend(metadata_conflicts(relative, previous.file_metadata, csv_metadata.get(transcript_id)))
            merged = merge_metadata(previous.file_metadata, csv_metadata.get(transcript_id))
            if merged != previous.metadata and store is not None:
                store.set_metadata(transcript_id, merged)
            result.unchanged.append(transcript_id)
            if on_unchanged:
                on_unchanged()
            continue
        yield Job(path, size, digest, relative, previous is not None)


def worker_spec(project: Project, store: Store | None, warnings: list[str] | None = None) -> tuple[WorkerSpec, str]:
    """What every worker needs, with the latest readable models, and the version their suggestions carry. A model run
    that cannot be read (a damaged row) leaves the rules to suggest, said in ``warnings``: a project is never stuck on
    it, even while too few examples keep 'train' from fitting a new one."""
    settings, codebook = project.settings, project.codebook
    version = pipeline_version(codebook, settings.pipeline)
    run = store.latest_model_run(parameters=True) if store is not None else None
    if run is None or not run.readable or run.parameters is None:
        return WorkerSpec.build(codebook, settings), version
    spec = WorkerSpec.build(codebook, settings, model_run=run.id, model_parameters=run.parameters)
    try:
        spec.models()  # read (and so check) the stored models here, before any worker does
    except ProjectError as exc:
        if warnings is not None:
            warnings.append(f"{exc.message}; suggestions come from the codebook's rules until 'qualcode train' fits the models again")
        return WorkerSpec.build(codebook, settings), version
    return spec, f"{version}+model-{run.id}"
