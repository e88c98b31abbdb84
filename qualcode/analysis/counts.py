"""Counting codes: how often each theme came up, and among which respondents.

Tables are plain rows (``Table``): the terminal, the CSV writer and the workbook all read
the same rows, and no data-frame library is loaded to count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from qualcode.codebook import Codebook
from qualcode.errors import AnalysisError
from qualcode.ingest.transcripts import UNKNOWN_ROLE
from qualcode.project import Project, one_snapshot
from qualcode.store import Store
from qualcode.vocabulary import Status, Verdict, choices

GroupOrders = Mapping[str, Sequence[str]]


@dataclass
class Table:
    """A rectangular table: named columns and rows of plain values (None for an empty cell)."""

    columns: list[str]
    rows: list[list[Any]]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


# -- groups of respondents ------------------------------------------------------------------


def group_labels(store: Store, by: Sequence[str]) -> dict[str, str]:
    """Each transcript's group: its values of the ``by`` attributes ('unknown' when missing), joined by ' / '."""
    return {tid: " / ".join(value or UNKNOWN_ROLE for value in values) for tid, values in store.attribute_values(by).items()}


def ordered_groups(labels: set[str], by: Sequence[str] = ("role",), orders: GroupOrders | None = None) -> list[str]:
    """Groups in the project's order, attribute by attribute: values listed for that attribute under
    'groups' in qualcode.yaml first, as listed; then the others alphabetically; 'unknown' last."""
    orders = orders or {}

    def key(label: str) -> tuple:
        parts = label.split(" / ")
        keys = []
        for index, part in enumerate(parts):
            listed = [str(value).lower() for value in orders.get(by[index] if index < len(by) else "", ())]
            if part == UNKNOWN_ROLE:
                keys.append((2, 0, part))
            elif part.lower() in listed:
                keys.append((0, listed.index(part.lower()), part))
            else:
                keys.append((1, 0, part))
        return tuple(keys)

    return sorted(labels, key=key)


@dataclass
class CodeCount:
    code: str
    label: str
    depth: int
    segments: int
    transcripts: int
    by_group: dict[str, int]


@dataclass
class SuggestionSummary:
    attribute: str
    groups: list[str]
    respondents: dict[str, int]
    transcripts: int
    segments: int
    rows: list[CodeCount] = field(default_factory=list)


def suggestion_summary(store: Store, codebook: Codebook, *, attribute: str = "role", min_confidence: float = 0.0,
                       orders: GroupOrders | None = None) -> SuggestionSummary:
    """Segments and transcripts with a suggestion per code, transcripts counted per group.

    A parent code counts a segment or transcript once, however many of its children were suggested.
    """
    group_of = group_labels(store, [attribute])
    respondents: dict[str, int] = defaultdict(int)
    for group in group_of.values():
        respondents[group] += 1
    groups = ordered_groups(set(group_of.values()), [attribute], orders)
    segments: dict[str, int] = defaultdict(int)
    transcripts: dict[str, int] = defaultdict(int)
    by_group: dict[str, dict[str, int]] = defaultdict(lambda: {group: 0 for group in groups})
    rollup = {code.id: [code.id, *codebook.descendants(code.id)] for code in codebook.codes.values()}
    for code_id, transcript_id, count in store.suggestion_reach(rollup, min_confidence=min_confidence):
        segments[code_id] += count  # a segment belongs to one transcript, so per-transcript counts add up
        transcripts[code_id] += 1
        by_group[code_id][group_of[transcript_id]] += 1
    summary = SuggestionSummary(attribute, groups, dict(respondents), len(group_of), store.counts()["segments"])
    for code, depth in codebook.walk():
        summary.rows.append(CodeCount(code.id, code.label, depth, segments[code.id], transcripts[code.id], dict(by_group[code.id])))
    return summary


# -- codings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coding:
    """A segment and a code that counts under the chosen status."""

    segment_id: int
    transcript: str
    segment: int  # number among the transcript's respondent segments
    speaker: str
    start: int
    end: int
    text: str
    code: str
    status: str  # confirmed or suggested
    coders: str  # who confirmed it, comma-separated
    confidence: float | None
    memo: str = ""  # the notes written on the segment in review, "coder: text" joined by " | "


def memos(store: Store, coder: str | None = None) -> dict[int, str]:
    """Each segment's notes from review, as one text: "ann: said with a laugh | bob: ironic?"."""
    joined: dict[int, list[str]] = defaultdict(list)
    for note in store.notes(coder):
        joined[note.segment_id].append(f"{note.coder}: {' '.join(note.text.split())}")
    return {segment_id: " | ".join(texts) for segment_id, texts in joined.items()}


def check_status(status: str) -> Status:
    if status not in set(Status):
        raise AnalysisError(f"unknown status '{status}'", fix=f"use one of: {choices(Status)}")
    return Status(status)


def codings(store: Store, codebook: Codebook, *, status: str = Status.CONFIRMED, coder: str | None = None) -> list[Coding]:
    """One coding per segment and code that counts under ``status``.

    ``confirmed``: accepted or added by a coder (by ``coder`` only, when given);
    ``suggested``: machine suggestions nobody (or ``coder``) has decided on yet;
    ``all``: both. Codes no longer in the codebook are left out.
    """
    chosen = check_status(status)
    numbers = store.segment_numbers()
    segments = {row.id: (row.transcript_id, numbers[row.id], row.speaker or "", row.start, row.end, row.text) for row in store.codable_segments()}
    confirmed: dict[tuple[int, str], list[str]] = defaultdict(list)
    decided: set[tuple[int, str]] = set()
    for (segment_id, code, who), decision in store.latest_decisions(coder).items():
        decided.add((segment_id, code))
        if Verdict(decision.verdict).applies:
            confirmed[(segment_id, code)].append(who)
    # Confirmed codings need the confidence of their own segments only: a large project's other suggestions are not read.
    wanted = None if chosen != Status.CONFIRMED else sorted({segment_id for segment_id, _code in confirmed})
    stored_suggestions = store.suggestions(evidence=False, segment_ids=wanted)
    confidence = {(stored.segment_id, stored.code): stored.confidence for stored in stored_suggestions}
    # a rule that fired where the code's model says no is shown in review, but is no suggested coding
    says_yes = {(stored.segment_id, stored.code) for stored in stored_suggestions if stored.suggestion.says_yes}
    notes = memos(store, coder)
    found: list[Coding] = []
    if chosen in (Status.CONFIRMED, Status.ALL):
        for (segment_id, code), coders in confirmed.items():
            if code in codebook and segment_id in segments:
                found.append(Coding(segment_id, *segments[segment_id], code, Status.CONFIRMED.value, ", ".join(sorted(coders)),
                                    confidence.get((segment_id, code)), notes.get(segment_id, "")))
    if chosen in (Status.SUGGESTED, Status.ALL):
        for (segment_id, code), value in confidence.items():
            if (segment_id, code) not in decided and (segment_id, code) in says_yes and code in codebook and segment_id in segments:
                found.append(Coding(segment_id, *segments[segment_id], code, Status.SUGGESTED.value, "", value, notes.get(segment_id, "")))
    return sorted(found, key=lambda coding: (coding.transcript, coding.segment, coding.code))


# -- theme frequency -------------------------------------------------------------------------


def theme_frequency(store: Store, codebook: Codebook, found: Sequence[Coding], *, by: Sequence[str] = ("role",),
                    orders: GroupOrders | None = None) -> Table:
    """Per code: respondents who raised it, their % of the group, and coded segments, per group and in total.

    Groups are the values of the ``by`` attributes (two or more are crossed). The first
    row, ``N``, gives the respondents (transcripts) per group and their respondent segments.
    A parent code counts a segment or a respondent once, however many children apply.
    Columns: code, label, then per group (and 'All') respondents, %, segments; ``attrs``
    holds ``by``, ``groups`` and each row's ``depth`` (-1 for N).
    """
    by = list(by)
    labels = group_labels(store, by)
    groups = ordered_groups(set(labels.values()), by, orders)
    respondents = {group: sum(1 for label in labels.values() if label == group) for group in groups}
    segment_counts: dict[str, int] = defaultdict(int)
    for segment in store.codable_segments():
        segment_counts[labels[segment.transcript_id]] += 1
    columns = ["code", "label"]
    # A group named like the total ('All', 'all') is written as 'All (group)', so it never lands in the total's columns
    shown = [f"{group} (group)" if group.casefold() == "all" else group for group in groups]
    for group in [*shown, "All"]:
        columns += [f"{group}: respondents", f"{group}: %", f"{group}: segments"]
    n_row: list[Any] = ["N", "respondents (N)"]
    for group in groups:
        n_row += [respondents[group], 100.0 if respondents[group] else None, segment_counts[group]]
    n_row += [len(labels), 100.0 if labels else None, sum(segment_counts.values())]
    rows: list[list[Any]] = [n_row]
    depths = [-1]
    by_code: dict[str, list[Coding]] = defaultdict(list)
    for coding in found:
        by_code[coding.code].append(coding)
    for code, depth in codebook.walk():
        selected = [coding for member in (code.id, *codebook.descendants(code.id)) for coding in by_code.get(member, ())]
        row: list[Any] = [code.id, code.label]
        for group in groups:
            part = [coding for coding in selected if labels[coding.transcript] == group]
            raised = len({coding.transcript for coding in part})
            row += [raised, round(100.0 * raised / respondents[group], 1) if respondents[group] else None, len({c.segment_id for c in part})]
        raised = len({coding.transcript for coding in selected})
        row += [raised, round(100.0 * raised / len(labels), 1) if labels else None, len({coding.segment_id for coding in selected})]
        rows.append(row)
        depths.append(depth)
    return Table(columns, rows, {"by": by, "groups": shown, "depths": depths, "frequency": True})


def parse_breakdowns(values: Iterable[str]) -> list[list[str]]:
    """'sector' -> [['sector']]; 'role,sector' -> [['role', 'sector']] (crossed). A --by naming no attribute (',,') is refused."""
    found = []
    for value in values:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if value.strip() and not parts:
            raise AnalysisError(f"--by {value!r} names no attribute", fix="name one or more attributes, e.g. --by role or --by role,sector")
        if parts:
            found.append(parts)
    return found


@one_snapshot
def theme_table(project: Project, *, by: str = "role", status: str = Status.CONFIRMED, coder: str | None = None) -> Table:
    """The theme frequency table of ``qualcode stats``: ``by`` names an attribute, or attributes crossed with commas."""
    attributes = (parse_breakdowns([by]) or [["role"]])[0]
    store, codebook = project.store, project.codebook
    check_attributes(store, [attributes])
    found = codings(store, codebook, status=status, coder=coder)
    return theme_frequency(store, codebook, found, by=attributes, orders=dict(project.settings.groups))


# Bounds on the co-occurrence table: pairs are counted among the most applied codes while the work
# (the sum over segments of their codes squared) stays under COOCCURRENCE_WORK, and at most
# COOCCURRENCE_PAIRS pairs are listed, the most frequent first. A codebook of tens of thousands of codes
# that all fire would otherwise need codes-squared time and memory.
COOCCURRENCE_WORK = 20_000_000
COOCCURRENCE_PAIRS = 50_000


def cooccurrence(found: Sequence[Coding], codebook: Codebook, *, max_work: int = COOCCURRENCE_WORK,
                 max_pairs: int = COOCCURRENCE_PAIRS) -> Table:
    """Pairs of codes applied to the same segments: n1, n2, n12 and Jaccard n12 / (n1 + n2 - n12), the most frequent first.

    Only pairs that occur are counted (a sparse product of the segment-by-code incidence), in time proportional to
    the codings times the codes per segment; ``attrs['note']`` says when the bounds above left pairs out.
    """
    import numpy as np
    from scipy import sparse

    segments_of: dict[str, set[int]] = defaultdict(set)
    for coding in found:
        segments_of[coding.code].add(coding.segment_id)
    walk_order = {code.id: index for index, (code, _depth) in enumerate(codebook.walk())}
    # Most applied first, so that when the work must be bounded, the pairs a reader looks for are the ones kept.
    ranked = sorted((code for code in segments_of if code in walk_order), key=lambda code: (-len(segments_of[code]), walk_order[code]))
    per_segment: dict[int, int] = defaultdict(int)
    work, chosen = 0, list[str]()
    for code in ranked:
        added = sum(2 * per_segment[segment] + 1 for segment in segments_of[code])
        if work + added > max_work and chosen:
            break
        for segment in segments_of[code]:
            per_segment[segment] += 1
        work += added
        chosen.append(code)
    columns = ["code_1", "code_2", "n1", "n2", "n12", "jaccard"]
    if len(chosen) < 2:
        return Table(columns, [], {"note": _cooccurrence_note(len(chosen), len(ranked), 0, 0)})
    row_of = {segment: index for index, segment in enumerate(per_segment)}
    rows = [row_of[segment] for code in chosen for segment in segments_of[code]]
    cols = [index for index, code in enumerate(chosen) for _segment in segments_of[code]]
    incidence = sparse.csc_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(row_of), len(chosen)))
    together = sparse.triu(incidence.T @ incidence, k=1).tocoo()
    counts = together.data
    totals = np.array([len(segments_of[code]) for code in chosen], dtype=np.int64)
    position = np.array([walk_order[code] for code in chosen])
    first = np.where(position[together.row] < position[together.col], together.row, together.col)  # codebook order within a pair
    second = together.row + together.col - first
    jaccard = np.round(counts / (totals[first] + totals[second] - counts), 4)
    # The most frequent pairs, then the most exclusive, then codebook order: a stable order whatever the bounds.
    order = np.lexsort((position[second], position[first], -jaccard, -counts))[:max_pairs]
    records: list[list[Any]] = [
        [chosen[first[i]], chosen[second[i]], int(totals[first[i]]), int(totals[second[i]]), int(counts[i]), float(jaccard[i])] for i in order
    ]
    return Table(columns, records, {"note": _cooccurrence_note(len(chosen), len(ranked), len(records), len(counts))})


def _cooccurrence_note(counted: int, applied: int, shown: int, pairs: int) -> str:
    """What the co-occurrence table leaves out, or '' when it is whole."""
    parts = []
    if counted < applied:
        parts.append(f"pairs counted among the {counted:,} most applied of {applied:,} codes")
    if shown < pairs:
        parts.append(f"the {shown:,} most frequent of {pairs:,} pairs shown")
    return "co-occurrence: " + "; ".join(parts) if parts else ""


def check_attributes(store: Store, breakdowns: list[list[str]]) -> None:
    """Refuse a breakdown by an attribute no transcript has, naming those that exist (a typo would give one 'unknown' column)."""
    names = attribute_names(store)
    known = set(names) | {"role"}
    for attributes in breakdowns:
        missing = [attribute for attribute in attributes if attribute not in known]
        if missing:
            listed = ", ".join(names) if names else "none yet (add columns to transcripts/metadata.csv)"
            raise AnalysisError(f"no transcript has the attribute '{missing[0]}'", fix=f"use one of the attributes that exist: {listed}")


def attribute_headers(attributes: Sequence[str], taken: Iterable[str]) -> list[str]:
    """Column names for attributes beside columns of qualcode's own (``taken``): an attribute named like one of them
    ('code', 'text', a code id, ...) is written as 'attribute:NAME', so it never replaces or doubles that column."""
    reserved = set(taken)
    return [f"attribute:{name}" if name in reserved else name for name in attributes]


def attribute_names(store: Store) -> list[str]:
    """Every attribute of the transcripts, in the order they first appear (metadata.csv's column order)."""
    names: dict[str, None] = {}
    for stored in store.transcripts().values():
        names.update(dict.fromkeys(stored.metadata))
    return list(names)


def respondent_matrix(store: Store, codebook: Codebook, found: Sequence[Coding]) -> Table:
    """Framework matrix: one row per transcript with its attributes, one column per code (coded segments; parents roll up)."""
    transcripts = store.transcripts()
    attributes = attribute_names(store)
    code_columns = [code.id for code, _depth in codebook.walk()]
    segments_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    for coding in found:
        for code in (coding.code, *codebook.ancestors(coding.code)):
            segments_of[(coding.transcript, code)].add(coding.segment_id)
    rows = []
    for transcript_id, stored in transcripts.items():
        row: list[Any] = [transcript_id, *(stored.metadata.get(attribute, "") for attribute in attributes)]
        row += [len(segments_of.get((transcript_id, code), ())) for code in code_columns]
        rows.append(row)
    headers = attribute_headers(attributes, ["transcript", *code_columns])
    # a code whose id is one of the table's own columns ('transcript') is written as 'code:ID'
    shown = [f"code:{code}" if code == "transcript" else code for code in code_columns]
    return Table(["transcript", *headers, *shown], rows, {"code_columns": shown, "attributes": headers})


def excerpts(store: Store, codebook: Codebook, found: Sequence[Coding], *, code: str | None = None,
             where: dict[str, str] | None = None) -> Table:
    """Every coded segment with its transcript, speaker, metadata and text; filter by code (with children) and attributes."""
    transcripts = store.transcripts()
    attributes = attribute_names(store)
    if code is not None:
        if code not in codebook:
            raise AnalysisError(f"no code '{code}' in the codebook", fix="see 'qualcode codebook' for the ids")
        wanted = {code, *codebook.descendants(code)}
        found = [coding for coding in found if coding.code in wanted]
    rows = []
    for coding in found:
        metadata = transcripts[coding.transcript].metadata
        if where and any((metadata.get(key) or UNKNOWN_ROLE) != value for key, value in where.items()):
            continue
        rows.append([
            coding.transcript, coding.segment, coding.speaker, coding.code, codebook[coding.code].label,
            *(metadata.get(attribute, "") for attribute in attributes),
            coding.text, coding.start, coding.end, coding.status, coding.coders, coding.confidence, coding.memo,
        ])
    own = ["transcript", "segment", "speaker", "code", "label", "text", "start", "end", "status", "coders", "confidence", "memo"]
    headers = attribute_headers(attributes, own)
    columns = [*own[:5], *headers, *own[5:]]
    # In the workbook, what a reader needs on paper, the text widest: offsets and the speaker are for the CSV
    return Table(columns, rows, {"attributes": headers, "printed": ["transcript", "segment", "code", "label", "text", *headers, "status",
                                                                    "coders", "memo"]})


def codebook_table(codebook: Codebook) -> Table:
    rows = [
        [code.id, code.label, code.parent or "", depth, code.description, code.include, code.exclude,
         ", ".join(code.keywords), ", ".join(code.phrases), ", ".join(code.exact), " | ".join(code.examples)]
        for code, depth in codebook.walk()
    ]
    return Table(["id", "label", "parent", "level", "definition", "include", "exclude", "keywords", "phrases", "exact", "examples"], rows)


def taguette_codebook(codebook: Codebook) -> Table:
    """The codebook as Taguette imports it: a `tag` column holding the tag's path (parent labels joined by '.',
    Taguette's own hierarchy) and a `description`."""
    paths: dict[str, str] = {}
    rows = []
    for code, _depth in codebook.walk():
        own = code.label.replace(".", " ").strip() or code.id
        paths[code.id] = f"{paths[code.parent]}.{own}" if code.parent else own
        rows.append([paths[code.id], code.description])
    return Table(["tag", "description"], rows)

