"""A language model that suggests codes: the ``qualcode_llm`` spaCy component, and the pass that runs it over a project.

The component reads a Doc (a respondent segment, with the interviewer's question and a few of the researcher's own
decisions on similar segments beside it, ``doc._.qc_question`` and ``doc._.qc_examples``), asks the chat model through
``ChatClient`` with bounded concurrency, checks the reply (``prompt.parse_reply``), files it in the project's reply
cache at once, and writes ``doc.spans["qualcode_llm"]`` as the rule suggester writes its own. ``llm_suggest`` is the
pass ``qualcode code`` makes after importing: it asks about every respondent segment not yet answered (from this
process, whatever the engine: the model's server, not the client, is what limits a run) and merges the answers into
the suggestions of the segments nobody has decided on.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, Sequence

from qualcode.codebook import Code, Codebook
from qualcode.ingest.segmenting import neighbours
from qualcode.project import Project
from qualcode.settings import LlmSettings
from qualcode.store import Store
from qualcode.suggest.chat import ChatClient, ChatFailed, check_endpoint, host_of
from qualcode.suggest.labels import training_labels
from qualcode.suggest.prompt import (
    EVIDENCE_KIND,
    PROMPT_VERSION,
    Answer,
    Example,
    Malformed,
    codebook_key,
    codebook_text,
    estimate_tokens,
    handled_codes,
    messages,
    parse_reply,
    segment_key,
)
from qualcode.suggestion import Evidence, Suggestion
from qualcode.vocabulary import Source, Verdict

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

LLM_SPANS_KEY = "qualcode_llm"
QUESTION_EXTENSION = "qc_question"
EXAMPLES_EXTENSION = "qc_examples"
OK, FAILED = "ok", "failed"


class ReplyCache(Protocol):
    """Where answers are filed as they arrive, and found again (the project database, or a dict in a benchmark)."""

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[str, Any]]: ...

    def save(self, key: str, status: str, reply: Any) -> None: ...


class StoreCache:
    """The project database's reply cache, under one model, prompt version and codebook."""

    def __init__(self, store: Store, model: str, codebook: str) -> None:
        self.store, self.model, self.codebook = store, model, codebook
        self._lock = threading.Lock()  # one connection, written from the component's thread only; guarded all the same

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        with self._lock:
            return self.store.cached_replies(self.model, PROMPT_VERSION, self.codebook, keys)

    def save(self, key: str, status: str, reply: Any) -> None:
        with self._lock:
            self.store.save_reply(self.model, PROMPT_VERSION, self.codebook, key, status, reply)


class MemoryCache:
    def __init__(self) -> None:
        self.replies: dict[str, tuple[str, Any]] = {}

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        return {key: self.replies[key] for key in keys if key in self.replies}

    def save(self, key: str, status: str, reply: Any) -> None:
        self.replies[key] = (status, reply)


@dataclass
class LlmCounts:
    """What a pass did, for the researcher: how many segments were asked, found filed, failed, and what was dropped."""

    asked: int = 0
    cached: int = 0
    failed: int = 0
    unknown: int = 0  # codes the codebook does not have, dropped
    invented: int = 0  # quotes not in the segment, dropped with their code
    malformed: int = 0  # replies that were not the JSON asked for (each retried once)
    requests: int = 0  # HTTP requests sent, retries included
    failures: list[str] = field(default_factory=list)  # why, for the first few


class LlmSuggester:
    """The ``qualcode_llm`` component. ``configure`` gives it the client, the codes it decides and the cache."""

    def __init__(self, nlp: "Language", name: str) -> None:
        self.name = name
        self.client: ChatClient | None = None
        self.codes: list[Code] = []
        self.cache: ReplyCache = MemoryCache()
        self.counts = LlmCounts()
        self.on_answer: Callable[[LlmCounts], None] | None = None
        self._block = ""
        self._known: set[str] = set()

    def configure(self, client: ChatClient, codes: Sequence[Code], cache: ReplyCache,
                  on_answer: Callable[[LlmCounts], None] | None = None) -> None:
        self.client, self.codes, self.cache, self.on_answer = client, list(codes), cache, on_answer
        self._block = codebook_text(self.codes)
        self._known = {code.id for code in self.codes}
        self.counts = LlmCounts()

    def __call__(self, doc: "Doc") -> "Doc":
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable["Doc"], batch_size: int = 64) -> Iterator["Doc"]:
        from spacy.util import minibatch

        for batch in minibatch(docs, size=batch_size):
            yield from self._batch(list(batch))

    def _batch(self, docs: list["Doc"]) -> list["Doc"]:
        keys = [segment_key(doc.text, doc._.get(QUESTION_EXTENSION)) for doc in docs]
        filed = self.cache.lookup(keys)
        answers: dict[int, Answer | None] = {}
        pending: dict[Future, int] = {}
        with ThreadPoolExecutor(max_workers=self._concurrency()) as pool:
            for index, (doc, key) in enumerate(zip(docs, keys)):
                status, reply = filed.get(key, (None, None))
                if status == OK:
                    answers[index] = Answer.from_json(reply)
                    self.counts.cached += 1
                else:
                    pending[pool.submit(self._ask, doc)] = index
            for future in _as_completed(pending):
                index = pending[future]
                answer, reason = future.result()
                # Filed as each answer arrives, in this thread: a run killed after it asks nothing twice.
                self.cache.save(keys[index], OK if answer is not None else FAILED, answer.to_json() if answer is not None else {"reason": reason})
                answers[index] = answer
                if self.on_answer is not None:
                    self.on_answer(self.counts)
        for index, doc in enumerate(docs):
            _write_spans(doc, answers.get(index))
        return docs

    def _concurrency(self) -> int:
        return self.client.settings.concurrency if self.client is not None else 1

    def _ask(self, doc: "Doc") -> tuple[Answer | None, str]:
        """One segment: asked, checked, asked again once if the reply was malformed. (answer, '') or (None, why)."""
        assert self.client is not None
        payload = messages(self._block, doc.text, doc._.get(QUESTION_EXTENSION), doc._.get(EXAMPLES_EXTENSION) or [])
        reason = ""
        for _attempt in range(2):
            try:
                before = self.client.stats.requests
                reply = self.client.complete(payload)
            except ChatFailed as exc:
                reason = str(exc)
                break
            finally:
                self.counts.requests += self.client.stats.requests - before
            try:
                answer = parse_reply(reply, doc.text, self._known)
            except Malformed as exc:
                self.counts.malformed += 1
                reason = f"a malformed reply ({exc})"
                continue
            self.counts.asked += 1
            self.counts.unknown += answer.unknown
            self.counts.invented += answer.invented
            return answer, ""
        self.counts.failed += 1
        if len(self.counts.failures) < 5:
            self.counts.failures.append(reason)
        return None, reason


def _as_completed(pending: dict[Future, int]) -> Iterator[Future]:
    from concurrent.futures import as_completed

    return as_completed(pending)


def _write_spans(doc: "Doc", answer: Answer | None) -> None:
    from spacy.tokens import SpanGroup

    spans, confidence, evidence = [], {}, {}
    for code, (value, quotes) in sorted((answer.codes if answer is not None else {}).items()):
        span = doc.char_span(quotes[0][0], quotes[0][1], label=code, alignment_mode="expand")
        if span is None:
            continue
        spans.append(span)
        confidence[code] = value
        evidence[code] = [Evidence(doc.text[start:end], EVIDENCE_KIND, start, end).to_json() for start, end in quotes]
    group = SpanGroup(doc, name=LLM_SPANS_KEY, spans=spans)
    group.attrs.update({"confidence": confidence, "evidence": evidence, "source": Source.LLM.value,
                        "status": OK if answer is not None else FAILED})
    doc.spans[LLM_SPANS_KEY] = group


def register() -> None:
    """Register the component and its Doc extensions with spaCy (once)."""
    from spacy.language import Language
    from spacy.tokens import Doc

    for name in (QUESTION_EXTENSION, EXAMPLES_EXTENSION):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=None)
    if "qualcode_llm" not in Language.factories:
        Language.factory("qualcode_llm")(lambda nlp, name: LlmSuggester(nlp, name))


def llm_pipeline(settings: LlmSettings, codes: Sequence[Code], cache: ReplyCache, *, language: str = "en",
                 on_answer: Callable[[LlmCounts], None] | None = None) -> tuple["Language", LlmSuggester, ChatClient]:
    """A pipeline of the tokenizer and ``qualcode_llm`` alone (the rules and models run elsewhere), ready to pipe."""
    import spacy

    register()
    nlp = spacy.blank(language)
    component: Any = nlp.add_pipe("qualcode_llm")
    client = ChatClient(settings)
    component.configure(client, codes, cache, on_answer)
    return nlp, component, client


# -- merging answers into suggestions --------------------------------------------------------------


def merge(existing: Sequence[Suggestion], answer: Answer | None, handled: set[str], text: str) -> list[Suggestion]:
    """A segment's suggestions with the model's answer: for the codes it decides, its yes (with its quotes, and the
    rules' evidence beside them) or its no (a rule's hit stays on screen, marked as the model's no); the other codes'
    suggestions as they were. A failed segment keeps what it had."""
    if answer is None:
        return list(existing)
    merged = {item.code: item for item in existing if item.code not in handled}
    for item in existing:
        if item.code in handled and item.code not in answer.codes and any(e.kind != EVIDENCE_KIND for e in item.evidence):
            rules = [e for e in item.evidence if e.kind != EVIDENCE_KIND]
            merged[item.code] = Suggestion(item.code, item.confidence, rules, Source.LLM, False)
    previous = {item.code: item for item in existing}
    for code, (confidence, spans) in answer.codes.items():
        rules = [e for e in previous[code].evidence if e.kind != EVIDENCE_KIND] if code in previous else []
        quotes = [Evidence(text[start:end], EVIDENCE_KIND, start, end) for start, end in spans]
        merged[code] = Suggestion(code, confidence, quotes + rules, Source.LLM, True)
    return sorted(merged.values(), key=lambda item: item.code)


# -- the pass over a project ----------------------------------------------------------------------------


@dataclass
class LlmPlan:
    """What a pass will send, said before anything is: the host, and how many segments and tokens."""

    host: str
    model: str
    segments: int  # to ask about now
    cached: int  # answered before
    tokens: int  # an estimate of the prompt tokens to send
    loopback: bool


@dataclass
class LlmReport:
    plan: LlmPlan
    counts: LlmCounts
    merged: int = 0  # undecided segments whose suggestions changed


@dataclass
class _Target:
    segment_id: int
    text: str
    question: str | None
    decided: bool


def _targets(store: Store) -> list[_Target]:
    decided = {row.id for row in store.codable_segments()} - {row.id for row in store.undecided_segments()}
    found = []
    for transcript_id in store.transcripts():
        rows = store.segments(transcript_id)
        for row, (question, _previous) in zip(rows, neighbours(rows)):
            if row.codable:
                found.append(_Target(row.id, row.text, rows[question].text if question is not None else None, row.id in decided))
    return found


def _examples(project: Project, targets: Sequence[_Target], count: int) -> dict[int, list[Example]]:
    """Per segment, the researcher's decided segments most like it (by sentence vector; by shared words without
    vectors), never itself, with the codes applied and rejected: what the model learns from without training."""
    if count <= 0:
        return {}
    store, codebook = project.store, project.codebook
    codes = [code.id for code in codebook.codes.values() if not code.children]
    ids, labels, _count = training_labels(store, codes)
    if not ids:
        return {}
    rejected = {(segment_id, code) for (segment_id, code, _coder), decision in store.latest_decisions().items()
                if decision.verdict == Verdict.REJECTED}
    text_of = {target.segment_id: target.text for target in _targets(store)}
    decided = {segment_id: Example(text_of.get(segment_id, ""), [code for code in codes if labels[code][i] == 1],
                                   [code for code in codes if labels[code][i] == 0 and (segment_id, code) in rejected])
               for i, segment_id in enumerate(ids)}
    pool = [segment_id for segment_id in ids if decided[segment_id].text]
    if not pool:
        return {}
    similarity = _similarity(project, [target.text for target in targets], [decided[segment_id].text for segment_id in pool])
    chosen: dict[int, list[Example]] = {}
    for row, target in enumerate(targets):
        ranked = sorted(range(len(pool)), key=lambda column: -similarity[row][column])
        chosen[target.segment_id] = [decided[pool[column]] for column in ranked if pool[column] != target.segment_id][:count]
    return chosen


def _similarity(project: Project, texts: Sequence[str], pool: Sequence[str]) -> Any:
    import numpy as np

    settings = project.settings
    if settings.vectors.value != "none":
        from qualcode.suggest.spec import pipeline_for
        from qualcode.suggest.vector_cache import cached_vectors

        nlp = pipeline_for(project.codebook, settings)
        a = np.array(cached_vectors(project.store, nlp, settings.vectors, list(texts)))
        b = np.array(cached_vectors(project.store, nlp, settings.vectors, list(pool)))
        return a @ b.T
    words = [set(text.lower().split()) for text in texts]
    others = [set(text.lower().split()) for text in pool]
    return [[len(w & o) / (len(w | o) or 1) for o in others] for w in words]


def llm_plan(project: Project, *, refresh: bool = False) -> tuple[LlmPlan, list[_Target], dict[str, tuple[str, Any]], str]:
    """What a pass would ask, sending nothing: ``qualcode code --dry-run``."""
    settings = project.settings.llm
    assert settings is not None
    check_endpoint(settings)
    store, codebook = project.store, project.codebook
    codes = handled_codes(codebook, settings.ignore)
    book = codebook_key(codes)
    targets = _targets(store)
    keys = [segment_key(target.text, target.question) for target in targets]
    filed = store.cached_replies(settings.model, PROMPT_VERSION, book, keys)
    todo = [target for target, key in zip(targets, keys) if filed.get(key, ("", None))[0] != OK or (refresh and not target.decided)]
    block = codebook_text(codes)
    tokens = sum(estimate_tokens(messages(block, target.text, target.question, [])) for target in todo)
    plan = LlmPlan(host_of(settings.endpoint), settings.model, len(todo), len(targets) - len(todo), tokens,
                   loopback=_is_loopback(settings.endpoint))
    return plan, todo, filed, book


def llm_estimate(project: Project, segments: Sequence[tuple[str, str | None]]) -> tuple[int, int]:
    """For segments not yet in the project (a dry run's new files): how many would be asked, and about how many prompt
    tokens that sends (segments already answered under these settings, by their text and question, are not asked)."""
    settings = project.settings.llm
    if settings is None or not segments:
        return 0, 0
    codes = handled_codes(project.codebook, settings.ignore)
    filed: dict[str, Any] = {}
    if project.has_database:
        filed = project.store.cached_replies(settings.model, PROMPT_VERSION, codebook_key(codes),
                                             [segment_key(text, question) for text, question in segments])
    block = codebook_text(codes)
    todo = [(text, question) for text, question in segments if filed.get(segment_key(text, question), ("", None))[0] != OK]
    return len(todo), sum(estimate_tokens(messages(block, text, question, [])) for text, question in todo)


def _is_loopback(endpoint: str) -> bool:
    from qualcode.suggest.chat import is_loopback

    return is_loopback(endpoint)


def llm_suggest(project: Project, *, refresh: bool = False, on_plan: Callable[[LlmPlan], None] | None = None,
                on_progress: Callable[[str, int, int], None] | None = None) -> LlmReport | None:
    """Ask the language model about every respondent segment it has not answered (with ``refresh``, the undecided ones
    again, with the researcher's latest decisions as examples), then merge the answers into the suggestions of the
    segments nobody has decided on. None when no language model is set up. ``on_plan`` hears what will be sent (host,
    segments, tokens) before the first request."""
    settings = project.settings.llm
    if settings is None:
        return None
    plan, todo, _filed, book = llm_plan(project, refresh=refresh)
    if on_plan is not None:
        on_plan(plan)
    store, codebook = project.store, project.codebook
    codes = handled_codes(codebook, settings.ignore)
    cache: ReplyCache = StoreCache(store, settings.model, book)
    counts = LlmCounts()
    if todo:
        if refresh:
            cache = _Refreshing(cache, {segment_key(t.text, t.question) for t in todo})
        examples = _examples(project, todo, settings.examples)
        done = [0]

        def progress(current: LlmCounts) -> None:
            done[0] += 1
            if on_progress is not None:
                on_progress("llm", done[0], len(todo))
                if current.failed:
                    on_progress("llm-failed", current.failed, len(todo))  # the bar says how many failed so far

        nlp, component, client = llm_pipeline(settings, codes, cache, language=project.settings.language, on_answer=progress)
        with client:
            docs = []
            for target in todo:
                doc = nlp.make_doc(target.text)
                doc._.set(QUESTION_EXTENSION, target.question)
                doc._.set(EXAMPLES_EXTENSION, examples.get(target.segment_id, []))
                docs.append(doc)
            for _doc in component.pipe(docs):
                pass
        counts = component.counts
    report = LlmReport(plan, counts)
    report.merged = apply_answers(project)
    return report


class _Refreshing:
    """A cache that forgets the filed answers of the segments being asked again."""

    def __init__(self, cache: ReplyCache, fresh: set[str]) -> None:
        self.cache, self.fresh = cache, fresh

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        return {key: value for key, value in self.cache.lookup(keys).items() if key not in self.fresh}

    def save(self, key: str, status: str, reply: Any) -> None:
        self.cache.save(key, status, reply)


def answers_by_segment(project: Project, targets: Sequence[_Target] | None = None) -> dict[int, Answer | None]:
    """The filed answers under the current settings, per respondent segment (None: failed); missing: never answered."""
    settings = project.settings.llm
    if settings is None:
        return {}
    store = project.store
    targets = _targets(store) if targets is None else targets
    book = codebook_key(handled_codes(project.codebook, settings.ignore))
    keys = [segment_key(target.text, target.question) for target in targets]
    filed = store.cached_replies(settings.model, PROMPT_VERSION, book, keys)
    found: dict[int, Answer | None] = {}
    for target, key in zip(targets, keys):
        if key in filed:
            status, reply = filed[key]
            found[target.segment_id] = Answer.from_json(reply) if status == OK else None
    return found


def apply_answers(project: Project) -> int:
    """Merge the filed answers into the suggestions of the segments nobody has decided on, writing only those that
    change (after `code` re-suggests a transcript, or a refit re-scores, the answers go back on). Returns how many."""
    settings = project.settings.llm
    if settings is None or project.read_only:
        return 0
    store = project.store
    handled = {code.id for code in handled_codes(project.codebook, settings.ignore)}
    undecided = {row.id for row in store.undecided_segments()}
    targets = [target for target in _targets(store) if target.segment_id in undecided]
    text_of = {target.segment_id: target.text for target in targets}
    answers = answers_by_segment(project, targets)
    if not answers:
        return 0
    current: dict[int, list[Suggestion]] = {segment_id: [] for segment_id in answers}
    versions: dict[int, str] = {}
    for stored in store.suggestions(segment_ids=sorted(answers)):
        current[stored.segment_id].append(stored.suggestion)
        versions[stored.segment_id] = stored.pipeline_version
    changed = []
    for segment_id, answer in answers.items():
        merged = merge(current[segment_id], answer, handled, text_of[segment_id])
        if _shape(merged) != _shape(current[segment_id]):
            changed.append((segment_id, merged))
    if changed:
        version = _version(versions, project)
        store.replace_segment_suggestions(changed, pipeline_version=version)
    return len(changed)


def _shape(items: Sequence[Suggestion]) -> list[tuple]:
    return sorted((item.code, round(item.confidence, 3), str(item.source), item.applies, tuple((e.kind, e.start, e.end) for e in item.evidence))
                  for item in items)


def _version(versions: dict[int, str], project: Project) -> str:
    from qualcode.suggest.pipeline import pipeline_version

    base = pipeline_version(project.codebook, project.settings.pipeline)
    known = [version for version in versions.values() if version.startswith(base)]
    stem = known[0] if known else base
    return stem if stem.endswith("+llm") else f"{stem}+llm"


def llm_source(project: Project) -> Any:
    """The language model as an agreement source ('llm'): every segment it answered, and the codes it applied."""
    from qualcode.analysis.evaluation import CodingSource

    settings = project.settings.llm
    if settings is None:
        from qualcode.errors import EvaluationError

        raise EvaluationError("no language model is set up for this project", fix="add an 'llm:' block to qualcode.yaml, then run 'qualcode code'")
    answers = answers_by_segment(project)
    covered = {segment_id for segment_id, answer in answers.items() if answer is not None}
    applied = {(segment_id, code) for segment_id, answer in answers.items() if answer is not None for code in answer.codes}
    evidence = {(segment_id, code): f"llm {answer.codes[code][0]:.2f}" for segment_id, answer in answers.items() if answer is not None
                for code in answer.codes}
    source = CodingSource(f"llm ({settings.model})", covered, applied, evidence)
    if not covered:
        source.warnings.append("the language model has answered no segment under the current settings and codebook: run 'qualcode code'")
    return source


__all__ = ["LlmSuggester", "llm_pipeline", "llm_suggest", "llm_plan", "llm_source", "apply_answers", "merge", "MemoryCache",
           "StoreCache", "LlmCounts", "LlmPlan", "LlmReport", "Codebook"]
