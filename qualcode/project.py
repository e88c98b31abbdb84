"""A qualcode project: a folder with codebook.yaml, transcripts/, exports/, an optional
qualcode.yaml of settings and the database in .qualcode/project.db.

``code()`` is the library side of ``qualcode code``: it imports new or changed
transcripts and (re)computes suggestions.
"""

from __future__ import annotations

import getpass
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

from qualcode.codebook import Codebook, load_codebook
from qualcode.errors import ProjectError, SettingsError, TranscriptError
from qualcode.store import Store
from qualcode.transcripts import (
    DEFAULT_INTERVIEWER_LABELS,
    METADATA_FILE,
    SegmentOptions,
    Transcript,
    discover,
    file_hash,
    load_metadata,
    merge_metadata,
    read_transcript,
)

SETTINGS_FILE = "qualcode.yaml"
CODEBOOK_FILE = "codebook.yaml"
DATABASE = Path(".qualcode") / "project.db"
# Below this many bytes to process, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 1_500_000


@dataclass(frozen=True)
class Settings:
    interviewer_labels: tuple[str, ...] = DEFAULT_INTERVIEWER_LABELS
    segment_words: int = 120
    pipeline: str | None = None
    language: str = "en"
    coder: str | None = None
    min_confidence: float = 0.0
    transcripts: str = "transcripts"
    exports: str = "exports"
    workers: int = 0  # 0: decide from the machine and the amount of work
    retrain_after: int = 50  # new decisions before `code` and `review` refit the models; 0: never
    max_transcript_mb: int = 20  # larger files are skipped: no interview is that long, a mis-saved export might be
    learn_min_examples: int = 5  # of each class, before a code gets a model

    @property
    def segment_options(self) -> SegmentOptions:
        return SegmentOptions(interviewer_labels=self.interviewer_labels, max_words=self.segment_words)


_SETTING_TYPES: dict[str, Any] = {
    "interviewer_labels": list,
    "segment_words": int,
    "pipeline": str,
    "language": str,
    "coder": str,
    "min_confidence": float,
    "transcripts": str,
    "exports": str,
    "workers": int,
    "retrain_after": int,
    "learn_min_examples": int,
    "max_transcript_mb": int,
}


def load_settings(project_dir: str | Path) -> Settings:
    path = Path(project_dir) / SETTINGS_FILE
    if not path.exists():
        return Settings()
    try:
        text = path.read_text(encoding="utf-8-sig")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise SettingsError(f"YAML syntax error: {exc.problem}", path=path, line=mark.line + 1 if mark else None) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read settings ({str(exc).splitlines()[0]})", path=path, fix="write 'key: value' lines in UTF-8") from None
    if node is None:
        return Settings()
    if not isinstance(node, yaml.MappingNode):
        raise SettingsError("expected 'key: value' settings", path=path, line=node.start_mark.line + 1)
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        line = key_node.start_mark.line + 1
        if key not in _SETTING_TYPES:
            raise SettingsError(f"unknown setting '{key}'", path=path, line=line, key_path=key, fix=f"known settings: {', '.join(_SETTING_TYPES)}")
        value = _construct(value_node)
        expected = _SETTING_TYPES[key]
        if value is None:
            continue
        if expected is list:
            if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
                raise SettingsError("expected a list of labels", path=path, line=line, key_path=key, fix="e.g. [Interviewer, I, Q]")
            value = tuple(item.strip() for item in value)
        elif expected is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise SettingsError("expected a number from 0 to 1", path=path, line=line, key_path=key)
            value = float(value)
        elif expected is int:
            minimum = {"segment_words": 10, "learn_min_examples": 2, "max_transcript_mb": 1}.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise SettingsError(f"expected a whole number of at least {minimum}", path=path, line=line, key_path=key)
        elif not isinstance(value, str):
            value = str(value)
        values[key] = value
    return Settings(**values)


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def default_coder(settings: Settings) -> str:
    if settings.coder:
        return settings.coder
    try:
        return getpass.getuser()
    except Exception:  # getuser raises various errors when no user name is set
        return "coder"


@dataclass
class Project:
    root: Path
    settings: Settings

    @classmethod
    def open(cls, project_dir: str | Path = ".") -> "Project":
        root = Path(project_dir).resolve()
        if not root.is_dir():
            raise ProjectError("no such project folder", path=root, fix="pass --project with the folder holding codebook.yaml")
        return cls(root, load_settings(root))

    @property
    def codebook_path(self) -> Path:
        return self.root / CODEBOOK_FILE

    @property
    def transcripts_dir(self) -> Path:
        return self.root / self.settings.transcripts

    @property
    def exports_dir(self) -> Path:
        return self.root / self.settings.exports

    @property
    def database_path(self) -> Path:
        return self.root / DATABASE

    def codebook(self) -> Codebook:
        return load_codebook(self.codebook_path)

    def store(self) -> Store:
        return Store(self.database_path)

    def shorten(self, message: str) -> str:
        """A message with this project's absolute paths made relative to it."""
        return message.replace(f"{self.root}/", "")

    def relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path.resolve())


# -- coding ------------------------------------------------------------------------------


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
    retrained: "TrainResult | None" = None
    rescored: int = 0


ProgressCallback = Callable[[str, int, int], None]

# Per-process pipeline, built once in each worker (and in the main process when serial).
_worker_state: dict[str, Any] = {}


def _init_worker(codebook: Codebook, settings: Settings, models: Any = None) -> None:
    _pipeline_for(codebook, settings)
    _worker_state["models"] = models


def _process_file(job: tuple[Path, int]) -> tuple[Path, Transcript | None, list | None, str | None]:
    from qualcode.pipeline import suggest

    path, _size = job
    settings: Settings = _worker_state["settings"]
    try:
        transcript = read_transcript(path, settings.segment_options)
    except TranscriptError as exc:
        return path, None, None, str(exc)
    texts = [segment.text for segment in transcript.segments if segment.coded]
    suggestions = suggest(_worker_state["nlp"], texts, min_confidence=settings.min_confidence, models=_worker_state.get("models"))
    return path, transcript, suggestions, None


def _worker_count(settings: Settings, total_bytes: int) -> int:
    if settings.workers:
        return settings.workers
    if total_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _run_jobs(jobs: list[tuple[Path, int]], codebook: Codebook, settings: Settings, models: Any = None) -> Iterator[tuple]:
    workers = _worker_count(settings, sum(size for _path, size in jobs))
    if workers <= 1 or len(jobs) < 2:
        _init_worker(codebook, settings, models)
        for job in jobs:
            yield _process_file(job)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(codebook, settings, models)) as pool:
        yield from pool.map(_process_file, jobs, chunksize=4)


def code(
    *,
    project_dir: str | Path = ".",
    paths: Iterable[str | Path] | None = None,
    on_progress: ProgressCallback | None = None,
) -> CodeResult:
    """Import new or changed transcripts, then (re)suggest codes where the rules changed."""
    from qualcode.pipeline import pipeline_version

    from qualcode.model import load_models

    project = Project.open(project_dir)
    settings = project.settings
    codebook = project.codebook()
    version = pipeline_version(codebook, settings.pipeline)
    result = CodeResult(pipeline_version=version)
    if project.database_path.exists():
        result.retrained = maybe_retrain(project)
    models = None
    model_run = None
    if project.database_path.exists():
        with project.store() as store:
            loaded = load_models(store)
        if loaded is not None:
            model_run, models = loaded
            models.models = {code: model for code, model in models.models.items() if code in codebook}
    scored_version = f"{version}+model-{model_run}" if model_run else version
    given = [Path(p) if Path(p).is_absolute() else project.root / p for p in (paths or [project.transcripts_dir])]
    files, unsupported = discover(given)
    result.skipped.extend(Skipped(project.relative(path), reason) for path, reason in unsupported)

    csv_metadata: dict[str, dict[str, str]] = {}
    metadata_files = {project.transcripts_dir / METADATA_FILE}
    metadata_files.update((path if path.is_dir() else path.parent) / METADATA_FILE for path in given)
    for metadata_file in sorted(metadata_files):
        rows, warnings = load_metadata(metadata_file)
        result.warnings.extend(project.shorten(warning) for warning in warnings)
        for transcript_id, values in rows.items():
            csv_metadata.setdefault(transcript_id, {}).update(values)

    with project.store() as store:
        known = store.transcripts()
        jobs: list[tuple[Path, int]] = []
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
            jobs.append((path, size))

        total = len(jobs)
        if on_progress:
            on_progress("import", 0, total)
        for done, (path, transcript, suggestions, error) in enumerate(_run_jobs(jobs, codebook, settings, models) if jobs else [], start=1):
            relative = project.relative(path)
            if transcript is None:
                result.skipped.append(Skipped(relative, error.split(": ", 1)[-1] if error else "unreadable"))
            else:
                transcript.metadata = merge_metadata(transcript.file_metadata, csv_metadata.get(transcript.id))
                if "role" not in transcript.metadata:
                    result.warnings.append(f"{relative}: no 'role' in front matter or {METADATA_FILE}; counted as 'unknown'")
                result.warnings.extend(project.shorten(warning) for warning in transcript.warnings)
                existed = transcript.id in known
                outcome = store.save_transcript(transcript, suggestions, pipeline_version=scored_version, path=relative)
                result.retired_with_decisions += outcome.retired_with_decisions
                (result.updated if existed else result.imported).append(transcript.id)
                result.words += transcript.words
            if on_progress:
                on_progress("import", done, total)

        fresh = set(result.imported) | set(result.updated)
        stale = [transcript_id for transcript_id in store.stale_transcripts(version) if transcript_id not in fresh]
        if stale:
            _resuggest(store, stale, codebook, settings, scored_version, on_progress, models)
            result.resuggested = stale
        elif models is not None and store.get_meta("model_run_scored") != str(model_run):
            result.rescored = rescore_undecided(store, codebook, settings, models, scored_version)
        store.set_meta("pipeline_version", version)
        if model_run:
            store.set_meta("model_run_scored", str(model_run))
        result.segments = store.counts()["segments"]
    return result


def _pipeline_for(codebook: Codebook, settings: Settings):
    from qualcode.pipeline import build_pipeline

    if _worker_state.get("settings") == settings and _worker_state.get("fingerprint") == codebook.fingerprint:
        return _worker_state["nlp"]
    nlp = build_pipeline(codebook, pipeline_name=settings.pipeline, language=settings.language)
    _worker_state.update(nlp=nlp, settings=settings, fingerprint=codebook.fingerprint)
    return nlp


def rescore_undecided(store: Store, codebook: Codebook, settings: Settings, models: Any, version: str, batch: int = 512) -> int:
    """Re-suggest the segments nobody has decided on with the current models.

    Reviewed segments keep the suggestions their coder saw, so comparing machine and coder
    never scores the models on their own training data.
    """
    from qualcode.pipeline import suggest

    nlp = _pipeline_for(codebook, settings)
    rows = store.undecided_segments()
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        suggestions = suggest(nlp, [row["text"] for row in chunk], min_confidence=settings.min_confidence, models=models)
        store.replace_segment_suggestions(list(zip([row["id"] for row in chunk], suggestions)), pipeline_version=version)
    return len(rows)


@dataclass
class TrainResult:
    run: int | None
    examples: int
    decisions: int
    models: dict[str, dict[str, Any]]
    too_few: dict[str, dict[str, int]]
    rules_better: dict[str, dict[str, float]] = field(default_factory=dict)
    rescored: int = 0
    seconds: float = 0.0


def train(*, project_dir: str | Path = ".", seed: int = 0, rescore: bool = True) -> TrainResult:
    """Fit a model per code on the project's review decisions, store it, and re-score undecided segments."""
    import time

    from qualcode.model import fit_models, save_models, training_labels
    from qualcode.pipeline import pipeline_version

    started = time.perf_counter()
    project = Project.open(project_dir)
    settings = project.settings
    codebook = project.codebook()
    if not project.database_path.exists():
        raise ProjectError("no project database yet", path=project.root, fix="run 'qualcode code' first")
    with project.store() as store:
        codes = [code.id for code in codebook.codes.values() if not code.children]
        segment_ids, labels, decisions = training_labels(store, codes)
        texts = {row["id"]: row["text"] for row in store.coded_segments()}
        nlp = _pipeline_for(codebook, settings)
        docs = list(nlp.pipe([texts[segment_id] for segment_id in segment_ids], batch_size=256))
        models = fit_models(docs, labels, rule_codes=[code.id for code in codebook.suggestible()],
                            min_examples=settings.learn_min_examples, seed=seed)
        run = save_models(store, models, decisions=decisions) if models.models or models.rules_better else None
        summary = models.summary()
        result = TrainResult(run, models.examples, decisions, summary["codes"], summary["too_few_examples"], summary["rules_better"])
        if run is not None and rescore:
            version = f"{pipeline_version(codebook, settings.pipeline)}+model-{run}"
            result.rescored = rescore_undecided(store, codebook, settings, models, version)
            store.set_meta("model_run_scored", str(run))
    result.seconds = time.perf_counter() - started
    return result


def maybe_retrain(project: Project) -> TrainResult | None:
    """Refit when at least ``retrain_after`` decisions came in since the last fit (and some code has enough examples)."""
    from qualcode.model import latest_run

    if not project.settings.retrain_after:
        return None
    with project.store() as store:
        count = store.training_decisions()
        last = latest_run(store)
    since = count - (last[1] if last else 0)
    if since < project.settings.retrain_after:
        return None
    result = train(project_dir=project.root)
    return result if result.run is not None else None


def _resuggest(store: Store, transcript_ids: list[str], codebook: Codebook, settings: Settings, version: str,
               on_progress: ProgressCallback | None, models: Any = None) -> None:
    from qualcode.pipeline import suggest

    nlp = _pipeline_for(codebook, settings)
    for done, transcript_id in enumerate(transcript_ids, start=1):
        rows = store.coded_segments(transcript_id)
        suggestions = suggest(nlp, [row["text"] for row in rows], min_confidence=settings.min_confidence, models=models)
        store.replace_suggestions(transcript_id, list(zip([row["id"] for row in rows], suggestions)), pipeline_version=version)
        if on_progress:
            on_progress("resuggest", done, len(transcript_ids))


# -- safety: backups and checks ----------------------------------------------------------


def backup(*, project_dir: str | Path = ".", output: str | Path | None = None) -> Path:
    """A consistent copy of the project database, safe to take while others work in it."""
    from datetime import datetime, timezone

    project = Project.open(project_dir)
    if not project.database_path.exists():
        raise ProjectError("no project database yet", path=project.root, fix="run 'qualcode code' first")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = Path(output) if output else project.database_path.parent / "backups" / f"project-{stamp}.db"
    with project.store() as store:
        return store.backup(target)


@dataclass
class CheckReport:
    schema_version: int
    transcripts: int
    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(*, project_dir: str | Path = ".") -> CheckReport:
    """Verify a project: schema, integrity, orphan rows, and transcripts whose files changed or vanished."""
    project = Project.open(project_dir)
    if not project.database_path.exists():
        raise ProjectError("no project database yet", path=project.root, fix="run 'qualcode code' first")
    with project.store() as store:
        report = CheckReport(store.schema_version, store.counts()["transcripts"], store.problems())
        if report.problems:
            report.fixes.append("restore the latest copy from .qualcode/backups/ (or a 'qualcode backup'), or export what you can and start afresh")
        missing, changed = [], []
        for transcript_id, stored in store.transcripts().items():
            path = project.root / stored.path
            if not path.exists():
                missing.append(stored.path)
            elif file_hash(path) != stored.content_hash:
                changed.append(stored.path)
    if missing:
        report.problems.append(f"{len(missing)} transcript files are gone: {', '.join(missing[:5])}")
        report.fixes.append("put the files back (the database still holds their text and decisions)")
    if changed:
        report.problems.append(f"{len(changed)} transcript files changed since import: {', '.join(changed[:5])}")
        report.fixes.append("run 'qualcode code' to re-import them (decisions on unchanged segments are kept)")
    return report
