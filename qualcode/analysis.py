"""Counting codes: how often each theme came up, and among which respondents."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from qualcode.codebook import Codebook
from qualcode.store import Store
from qualcode.transcripts import UNKNOWN_ROLE

ROLE_ORDER = ("lead", "partner", "stakeholder")


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


def ordered_groups(values: set[str]) -> list[str]:
    known = [role for role in ROLE_ORDER if role in values]
    rest = sorted(value for value in values if value not in ROLE_ORDER and value != UNKNOWN_ROLE)
    return known + rest + ([UNKNOWN_ROLE] if UNKNOWN_ROLE in values else [])


def suggestion_summary(store: Store, codebook: Codebook, *, attribute: str = "role", min_confidence: float = 0.0) -> SuggestionSummary:
    """Segments and transcripts with a suggestion per code, transcripts counted per group.

    A parent code counts a segment or transcript once, however many of its children were suggested.
    """
    transcripts = store.transcripts()
    group_of = {tid: stored.metadata.get(attribute) or UNKNOWN_ROLE for tid, stored in transcripts.items()}
    respondents: dict[str, int] = defaultdict(int)
    for group in group_of.values():
        respondents[group] += 1
    segments_by_code: dict[str, set[int]] = defaultdict(set)
    transcripts_by_code: dict[str, set[str]] = defaultdict(set)
    for row in store.suggestion_rows():
        if row["confidence"] < min_confidence or row["code"] not in codebook:
            continue
        for code in [row["code"], *codebook.ancestors(row["code"])]:
            segments_by_code[code].add(row["segment_id"])
            transcripts_by_code[code].add(row["transcript_id"])
    groups = ordered_groups(set(group_of.values()))
    summary = SuggestionSummary(attribute, groups, dict(respondents), len(transcripts), store.counts()["segments"])
    for code, depth in codebook.walk():
        by_group = {group: 0 for group in groups}
        for tid in transcripts_by_code[code.id]:
            by_group[group_of[tid]] += 1
        summary.rows.append(
            CodeCount(code.id, code.label, depth, len(segments_by_code[code.id]), len(transcripts_by_code[code.id]), by_group)
        )
    return summary
