"""Human review of suggestions: a queue of segments and the decisions a coder makes on them.

``ReviewSession`` holds no decision that is not already in the store: every action
writes its rows (in one transaction) before it returns, so a crash loses nothing.
The CLI maps keys to these actions; tests drive them with scripted keys.
"""

from __future__ import annotations

import functools
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from qualcode.analysis.status import model_rows
from qualcode.codebook import Code, Codebook
from qualcode.errors import ReviewError, SegmentGone
from qualcode.ingest.transcripts import UNKNOWN_ROLE
from qualcode.project import Project
from qualcode.store import Entry, SegmentState, Store
from qualcode.suggestion import Suggestion
from qualcode.vocabulary import Mark, Method, ReviewOrder, Speaker, Verdict, choices

_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 (but tab and line breaks), DEL, C1


@dataclass(frozen=True)
class ReviewFilter:
    code: str | None = None
    transcript: str | None = None
    role: str | None = None
    min_confidence: float = 0.0
    include_unsuggested: bool = False
    order: str = ReviewOrder.TRANSCRIPT


@dataclass
class ReviewItem:
    segment_id: int
    transcript_id: str
    number: int  # 1-based among the transcript's respondent segments
    of: int
    position: int
    speaker: str | None
    text: str
    metadata: dict[str, str]
    suggestions: list[Suggestion]  # codes and confidences; the evidence is read when the item is shown
    has_evidence: bool = False

    def uncertainty(self) -> float:
        if not self.suggestions:
            return 1.0
        return min(abs(item.confidence - 0.5) for item in self.suggestions)


@dataclass
class ShownCode:
    number: int
    code: str
    label: str
    verdict: str | None  # this coder's standing verdict: accepted, rejected, added or None
    suggestion: Suggestion | None
    method: str | None = None


@dataclass
class Turn:
    speaker: str | None
    text: str
    coded: bool


@dataclass
class ReviewProgress:
    reviewed: int
    total: int
    accepted: int
    rejected: int
    added: int
    session_decisions: int
    per_minute: float | None  # None until the session is long enough for a meaningful rate


@dataclass
class ActionResult:
    message: str = ""
    moved: bool = False


A = TypeVar("A", bound=Callable[..., "ActionResult"])


def _survives_reimport(action: A) -> A:
    """An action whose segment a concurrent `qualcode code` replaced tells the coder and moves on, never a traceback."""

    @functools.wraps(action)
    def wrapper(self: "ReviewSession", *args: Any, **kwargs: Any) -> ActionResult:
        try:
            return action(self, *args, **kwargs)
        except SegmentGone:
            return self._reload()

    return wrapper  # type: ignore[return-value]


class ReviewSession:
    """One coder's pass over a filtered queue of segments."""

    def __init__(
        self,
        project: Project,
        *,
        coder: str,
        filters: ReviewFilter = ReviewFilter(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not coder or not coder.strip():
            raise ReviewError("no coder name", fix="pass --coder NAME or set 'coder' in qualcode.yaml")
        store = self.store = project.store
        self._idling = False  # whether ``idle`` has been called: from then on, housekeeping waits for it
        self.project = project
        self.codebook = project.codebook
        self.coder = coder
        self.filters = filters
        self.clock = clock
        self.started = clock()
        self.session_decisions = 0
        self._turns: dict[str, list] = {}
        self.items = self._ordered(load_queue(store, self.codebook, filters))
        self.states: dict[int, SegmentState] = store.coder_states(coder, [item.segment_id for item in self.items])
        self._count()
        first = self._next_unreviewed(0, wrap=True)
        self.index: int = first if first is not None else 0

    def idle(self) -> None:
        """Housekeeping for the moment after a screen is drawn and before the next key: the database's own (SQLite
        copies its write-ahead log into the file here, rather than at the end of some coder's commit). A session
        whose owner calls this (the review loop, after each screen) leaves that housekeeping to it from then on; one
        that never does (a batch of decisions) keeps SQLite's own."""
        if self.store.read_only:
            return
        if not self._idling:
            self.store.defer_checkpoints()
            self._idling = True
        self.store.idle()

    # -- state ------------------------------------------------------------------------

    @property
    def current(self) -> ReviewItem | None:
        if not self.items:
            return None
        item = self.items[self.index]
        if not item.has_evidence:
            # The queue was loaded without evidence (most of the cost of opening a large project): read this segment's now.
            full = {stored.code: stored.suggestion for stored in self.store.suggestions(segment_ids=[item.segment_id])}
            item.suggestions = [full.get(suggestion.code, suggestion) for suggestion in item.suggestions]
            item.has_evidence = True
        return item

    @property
    def finished(self) -> bool:
        return self._reviewed >= len(self.items)

    def state(self, item: ReviewItem) -> SegmentState:
        return self.states.get(item.segment_id) or SegmentState()

    def shown_codes(self, item: ReviewItem | None = None) -> list[ShownCode]:
        """The suggested codes, then codes this coder added, numbered for the keys 1-9."""
        item = item or self.current
        if item is None:
            return []
        state = self.state(item)
        shown: list[ShownCode] = []
        for suggestion in item.suggestions:
            shown.append(ShownCode(0, suggestion.code, self._label(suggestion.code), state.codes.get(suggestion.code), suggestion,
                                   state.methods.get(suggestion.code)))
        suggested = {suggestion.code for suggestion in item.suggestions}
        for code, verdict in state.codes.items():
            if code not in suggested:
                shown.append(ShownCode(0, code, self._label(code), verdict, None, state.methods.get(code)))
        for number, entry in enumerate(shown, start=1):
            entry.number = number
        return shown

    def _label(self, code: str) -> str:
        return self.codebook[code].label if code in self.codebook else code

    def context(self, item: ReviewItem | None = None, *, widen: bool = False) -> tuple[list[Turn], list[Turn]]:
        """The turns before the segment (the interviewer's question, or the previous turn) and, widened, after it."""
        item = item or self.current
        if item is None:
            return [], []
        turns = self._turns.get(item.transcript_id)
        if turns is None:
            turns = self._turns[item.transcript_id] = [
                (row.position, Turn(row.speaker, row.text, row.codable)) for row in self.store.segments(item.transcript_id)
            ]
        before = [turn for position, turn in turns if position < item.position]
        after = [turn for position, turn in turns if position > item.position]
        if widen:
            return before[-2:], after[:2]
        return before[-1:], []

    def _count(self) -> None:
        """The progress counts, over the whole queue: once when it is read, then kept up to date as decisions come in
        (a key must not recount a queue of thousands)."""
        self._in_queue = {item.segment_id for item in self.items}
        self._reviewed = 0
        self._verdicts = {verdict: 0 for verdict in Verdict}
        for item in self.items:
            self._tally(self.state(item), 1)

    def _tally(self, state: SegmentState, sign: int) -> None:
        self._reviewed += sign * int(state.reviewed)
        for verdict in state.codes.values():
            self._verdicts[Verdict(verdict)] += sign

    def progress(self) -> ReviewProgress:
        reviewed, counts = self._reviewed, self._verdicts
        minutes = (self.clock() - self.started) / 60.0
        rate = self.session_decisions / minutes if minutes >= 0.25 else None
        return ReviewProgress(reviewed, len(self.items), counts[Verdict.ACCEPTED], counts[Verdict.REJECTED], counts[Verdict.ADDED],
                              self.session_decisions, rate)

    # -- actions ------------------------------------------------------------------------

    def _write(self, entries: list[Entry]) -> None:
        if not entries:
            return
        self.store.record(entries, coder=self.coder)
        # A segment reviewed with no code to decide is still one decision ("nothing applies").
        self.session_decisions += max(1, sum(1 for entry in entries if entry.code is not None))
        for segment_id in {entry.segment_id for entry in entries}:
            self._refresh(segment_id)

    def _reload(self) -> ActionResult:
        """The segment on screen was replaced by a re-import: read the queue afresh and go on at its first unreviewed one."""
        self.items = self._ordered(load_queue(self.store, self.codebook, self.filters))
        self.states = self.store.coder_states(self.coder, [item.segment_id for item in self.items])
        self._count()
        first = self._next_unreviewed(0, wrap=True)
        self.index = first if first is not None else 0
        return ActionResult("This segment was replaced when its transcript was re-imported ('qualcode code'): that key was not "
                            "recorded; everything recorded before it is kept. The queue is read afresh.", True)

    def refresh_suggestions(self) -> int:
        """Refitted models re-scored the segments nobody has decided on: the segments ahead in this queue show their new
        suggestions from now on (the one on screen keeps what the coder is reading). Returns how many changed."""
        current = self.current
        ahead = [item for item in self.items if item is not current and not self.state(item).reviewed]
        fresh: dict[int, list[Suggestion]] = defaultdict(list)
        for stored in self.store.suggestions(evidence=False, segment_ids=[item.segment_id for item in ahead]):
            if stored.confidence >= self.filters.min_confidence:
                fresh[stored.segment_id].append(stored.suggestion)
        changed = 0
        for item in ahead:
            shown = sorted(fresh.get(item.segment_id, []), key=lambda s: -s.confidence)
            if [(s.code, s.confidence, s.applies) for s in shown] != [(s.code, s.confidence, s.applies) for s in item.suggestions]:
                item.suggestions, item.has_evidence = shown, False
                changed += 1
        return changed

    def learning(self) -> dict[str, str]:
        """The codes whose models are still learning, by the latest model run: code -> 'learning, ≈N more examples needed'."""
        run = self.store.latest_model_run()
        if run is None:
            return {}
        notes = {}
        for row in model_rows(run.summary, [code.id for code in self.codebook.suggestible()]):
            if row.speaker != Speaker.MODEL and (row.learning or row.too_few):
                notes[row.code] = f"learning, ≈{row.needed:,} more examples needed" if row.needed else "learning, more examples needed"
        return notes

    def _ordered(self, items: list[ReviewItem]) -> list[ReviewItem]:
        """The queue in the active order when asked for: the segments the machine is least sure of first."""
        if self.filters.order != ReviewOrder.ACTIVE or not items:
            return items
        from qualcode.review.ordering import uncertainty_scores  # the spaCy pipeline and models: only this order needs them

        scores = uncertainty_scores(self.project, [item.text for item in items], [item.segment_id for item in items])
        ranked = sorted(range(len(items)), key=lambda index: -scores[index])  # stable: ties keep transcript order
        return [items[index] for index in ranked]

    def _refresh(self, segment_id: int) -> None:
        fresh = self.store.coder_states(self.coder, [segment_id]).get(segment_id, SegmentState())
        if segment_id in self._in_queue:
            self._tally(self.states.get(segment_id) or SegmentState(), -1)
            self._tally(fresh, 1)
        self.states[segment_id] = fresh

    def accept_all(self) -> ActionResult:
        """Accept every shown suggestion not yet decided, mark the segment reviewed, move on."""
        return self._settle(Verdict.ACCEPTED)

    def reject_all(self) -> ActionResult:
        """Reject every shown suggestion not yet decided, mark the segment reviewed, move on."""
        return self._settle(Verdict.REJECTED)

    @_survives_reimport
    def _settle(self, verdict: Verdict) -> ActionResult:
        item = self.current
        if item is None:
            return ActionResult("Nothing to review.")
        state = self.state(item)
        entries = [Entry(item.segment_id, s.code, verdict) for s in item.suggestions if s.code not in state.codes]
        entries.append(Entry(item.segment_id, None, Mark.REVIEWED))
        self._write(entries)
        decided = len(entries) - 1
        message = f"{verdict.capitalize()} {decided} code{'s' if decided != 1 else ''}." if decided else "Reviewed."
        return ActionResult(message, self._advance())

    @_survives_reimport
    def toggle(self, number: int) -> ActionResult:
        shown = self.shown_codes()
        if not 1 <= number <= len(shown):
            return ActionResult(f"No code {number} here.")
        entry = shown[number - 1]
        if entry.verdict is None:
            # Undecided: the key says the opposite of what the screen shows. A suggested code (the machine's yes) is
            # rejected at once, one press; a rule hit the machine says no to is accepted.
            says_yes = entry.suggestion is not None and entry.suggestion.says_yes
            verdict = Verdict.REJECTED if says_yes else Verdict.ACCEPTED
        elif Verdict(entry.verdict).applies:
            verdict = Verdict.REJECTED
        else:
            verdict = Verdict.ACCEPTED if entry.suggestion is not None else Verdict.ADDED
        item = self.current
        assert item is not None
        self._write([Entry(item.segment_id, entry.code, verdict)])
        return ActionResult(f"{entry.code}: {verdict}.")

    @_survives_reimport
    def add_code(self, code_id: str) -> ActionResult:
        item = self.current
        if item is None:
            return ActionResult("Nothing to review.")
        if code_id not in self.codebook:
            return ActionResult(f"No code '{code_id}' in the codebook.")
        standing = self.state(item).codes.get(code_id)
        if standing is not None and Verdict(standing).applies:
            return ActionResult(f"{code_id} is already applied.")
        suggested = any(s.code == code_id for s in item.suggestions)
        verdict = Verdict.ACCEPTED if suggested else Verdict.ADDED
        self._write([Entry(item.segment_id, code_id, verdict)])
        return ActionResult(f"{code_id}: {verdict}.")

    @_survives_reimport
    def note(self, text: str) -> ActionResult:
        item = self.current
        if item is None or not text.strip():
            return ActionResult("No note written.")
        cleaned = _CONTROLS.sub("\ufffd", text.strip())  # a NUL cut notes short in some readers; no control code reaches a file
        self._write([Entry(item.segment_id, None, Mark.NOTE, note=cleaned)])
        return ActionResult("Note saved." if cleaned == text.strip() else "Note saved (control characters shown as \ufffd).")

    def skip(self) -> ActionResult:
        if not self.items:
            return ActionResult("Nothing to review.")
        following = self._next_unreviewed(self.index + 1, wrap=True, exclude_current=True)
        if following is None:
            return ActionResult("No other segment left to review.")
        self.index = following
        return ActionResult("Skipped.", True)

    def undo(self) -> ActionResult:
        """Undo this coder's most recent action, even one from an earlier session."""
        rows = self.store.last_batch(self.coder)
        if not rows:
            return ActionResult("Nothing to undo.")
        self.store.record([Entry(row.segment_id, None, Mark.UNDO, undoes=row.id) for row in rows], coder=self.coder)
        segment_id = rows[0].segment_id
        for affected in {row.segment_id for row in rows}:
            if affected in self.states or any(item.segment_id == affected for item in self.items):
                self._refresh(affected)
        moved = False
        for index, item in enumerate(self.items):
            if item.segment_id == segment_id:
                moved = index != self.index
                self.index = index
                break
        described = ", ".join(f"{row.code} {row.verdict}" if row.code else row.verdict for row in rows)
        return ActionResult(f"Undone: {described}.", moved)

    def _advance(self) -> bool:
        following = self._next_unreviewed(self.index + 1, wrap=True)
        if following is None:
            return False
        self.index = following
        return True

    def _next_unreviewed(self, start: int, *, wrap: bool, exclude_current: bool = False) -> int | None:
        count = len(self.items)
        order = list(range(start, count)) + (list(range(0, min(start, count))) if wrap else [])
        for index in order:
            if exclude_current and index == self.index:
                continue
            if not self.state(self.items[index]).reviewed:
                return index
        return None

    def find_codes(self, text: str) -> list[Code]:
        """Codes matching what the coder typed: a number from the listed codebook, or the start of an id or label."""
        text = text.strip().lower()
        codes = [code for code, _depth in self.codebook.walk()]
        if not text:
            return []
        if text.isdigit():
            index = int(text) - 1
            return [codes[index]] if 0 <= index < len(codes) else []
        exact = [code for code in codes if code.id == text or code.label.lower() == text]
        if exact:
            return exact
        return [code for code in codes if code.id.startswith(text) or code.label.lower().startswith(text)]


# From this share of a project's segments reviewed (by any coder), review orders by default as active. Measured in
# benchmarks/quality.py ("switch"): reviewing at random to a fifth and actively after ends, at half reviewed, with a
# corpus that agrees better with the human codes than random order on Du Bois and the Scrum themes, and as well on the
# Scrum codes; from the start, the active order costs on the themes at a fifth reviewed.
ACTIVE_AFTER = 0.2


@dataclass(frozen=True)
class OrderChoice:
    """The order review takes when none is asked for, and why."""

    order: ReviewOrder
    reviewed: int
    total: int

    @property
    def message(self) -> str:
        """What review says under its first screen: why it chose the active order; nothing for transcript order."""
        if self.order != ReviewOrder.ACTIVE:
            return ""
        return (f"Order: active, the segments the models are least sure of first ({self.reviewed} of the project's {self.total} "
                f"segments reviewed; from {ACTIVE_AFTER:.0%} on, this order teaches them most). --order transcript reads in "
                "transcript order.")


def default_order(project: Project) -> OrderChoice:
    """Transcript order until ``ACTIVE_AFTER`` of the segments are reviewed, the active order from then on."""
    store = project.store
    current = store.segment_numbers().keys()
    total = len(current)
    count = len(store.reviewed_segments() & current)
    order = ReviewOrder.ACTIVE if total and count >= ACTIVE_AFTER * total else ReviewOrder.TRANSCRIPT
    return OrderChoice(order, count, total)


def load_queue(store: Store, codebook: Codebook, filters: ReviewFilter) -> list[ReviewItem]:
    """The segments to review under the filters, in the requested order."""
    if filters.order not in set(ReviewOrder):
        raise ReviewError(f"unknown order '{filters.order}'", fix=f"use one of: {choices(ReviewOrder)}")
    transcripts = store.transcripts()
    if filters.transcript is not None and filters.transcript not in transcripts:
        known = ", ".join(list(transcripts)[:8])
        raise ReviewError(f"no transcript '{filters.transcript}' in the project", fix=f"use one of: {known}" if known else "run 'qualcode code' first")
    if filters.code is not None and filters.code not in codebook:
        raise ReviewError(f"no code '{filters.code}' in the codebook", fix="see 'qualcode codebook' for the ids")
    wanted_codes = None
    if filters.code is not None:
        wanted_codes = {filters.code, *codebook.descendants(filters.code)}
    suggestions = store.suggestions_by_segment(min_confidence=filters.min_confidence)
    items: list[ReviewItem] = []
    for transcript_id, stored in transcripts.items():
        if filters.transcript is not None and transcript_id != filters.transcript:
            continue
        role = stored.metadata.get("role") or UNKNOWN_ROLE
        if filters.role is not None and role != filters.role.lower():
            continue
        segments = store.codable_segments(transcript_id)
        for number, row in enumerate(segments, start=1):
            # Every suggestion, strongest first: `a` and `x` settle all of them, keys 1-9 toggle the first nine.
            shown = sorted(suggestions.get(row.id, []), key=lambda s: (-s.confidence, s.code))
            if wanted_codes is not None:
                if not any(s.code in wanted_codes for s in shown):
                    continue
            elif not shown and not filters.include_unsuggested:
                continue
            items.append(
                ReviewItem(row.id, transcript_id, number, len(segments), row.position, row.speaker, row.text, stored.metadata, shown)
            )
    if filters.order == ReviewOrder.UNCERTAIN:
        items.sort(key=lambda item: item.uncertainty())
    return items


def accept_above(project: Project, *, coder: str, threshold: float, filters: ReviewFilter = ReviewFilter()) -> int:
    """Record 'accepted' (method 'batch') for every suggestion at or above the threshold this coder has not decided."""
    if not 0.0 <= threshold <= 1.0:
        raise ReviewError(f"threshold {threshold} is outside 0 to 1", fix="pass e.g. --accept-above 0.9")
    store = project.store
    items = load_queue(store, project.codebook, filters)
    states = store.coder_states(coder, [item.segment_id for item in items])
    entries = [
        Entry(item.segment_id, suggestion.code, Verdict.ACCEPTED)
        for item in items
        for suggestion in item.suggestions
        if suggestion.confidence >= threshold and suggestion.says_yes and suggestion.code not in (states.get(item.segment_id) or SegmentState()).codes
    ]
    store.record(entries, coder=coder, method=Method.BATCH)
    return len(entries)
