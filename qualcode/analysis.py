"""Counting codes: how often each theme came up, and among which respondents."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qualcode.codebook import Codebook
from qualcode.errors import AnalysisError
from qualcode.store import Store
from qualcode.transcripts import UNKNOWN_ROLE

if TYPE_CHECKING:
    import pandas as pd

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


def suggestion_summary(store: Store, codebook: Codebook, *, attribute: str = "role", min_confidence: float = 0.0) -> SuggestionSummary:
    """Segments and transcripts with a suggestion per code, transcripts counted per group.

    A parent code counts a segment or transcript once, however many of its children were suggested.
    """
    group_of = group_labels(store, [attribute])
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
    summary = SuggestionSummary(attribute, groups, dict(respondents), len(group_of), store.counts()["segments"])
    for code, depth in codebook.walk():
        by_group = {group: 0 for group in groups}
        for tid in transcripts_by_code[code.id]:
            by_group[group_of[tid]] += 1
        summary.rows.append(
            CodeCount(code.id, code.label, depth, len(segments_by_code[code.id]), len(transcripts_by_code[code.id]), by_group)
        )
    return summary


# -- codings as tables -------------------------------------------------------------------

STATUSES = ("confirmed", "suggested", "all")
CODED_COLUMNS = ["segment_id", "transcript", "segment", "speaker", "start", "end", "text", "code", "status", "coders", "confidence"]


def coded_segments(store: Store, codebook: Codebook, *, status: str = "confirmed", coder: str | None = None) -> "pd.DataFrame":
    """One row per segment and code that counts under ``status``.

    ``confirmed``: accepted or added by a coder (by ``coder`` only, when given);
    ``suggested``: machine suggestions nobody (or ``coder``) has decided on yet;
    ``all``: both. Codes no longer in the codebook are left out.
    """
    import pandas as pd

    if status not in STATUSES:
        raise AnalysisError(f"unknown status '{status}'", fix=f"use one of: {', '.join(STATUSES)}")
    numbers = store.segment_numbers()
    segments = {
        row["id"]: (row["transcript_id"], numbers[row["id"]], row["speaker"] or "", row["start"], row["end"], row["text"])
        for row in store.coded_segments()
    }
    confirmed: dict[tuple[int, str], list[str]] = defaultdict(list)
    decided: set[tuple[int, str]] = set()
    for (segment_id, code, who), row in store.latest_decisions(coder).items():
        decided.add((segment_id, code))
        if row["verdict"] in ("accepted", "added"):
            confirmed[(segment_id, code)].append(who)
    confidence = {(row["segment_id"], row["code"]): row["confidence"] for row in store.suggestion_rows()}
    records = []
    if status in ("confirmed", "all"):
        for (segment_id, code), coders in confirmed.items():
            if code in codebook and segment_id in segments:
                records.append((segment_id, *segments[segment_id], code, "confirmed", ", ".join(sorted(coders)), confidence.get((segment_id, code))))
    if status in ("suggested", "all"):
        for (segment_id, code), value in confidence.items():
            if (segment_id, code) not in decided and code in codebook and segment_id in segments:
                records.append((segment_id, *segments[segment_id], code, "suggested", "", value))
    frame = pd.DataFrame.from_records(records, columns=CODED_COLUMNS)
    return frame.sort_values(["transcript", "segment", "code"], kind="stable").reset_index(drop=True)


def group_labels(store: Store, by: list[str]) -> dict[str, str]:
    """Each transcript's group: its values of the ``by`` attributes ('unknown' when missing), joined by ' / '."""
    return {
        tid: " / ".join(stored.metadata.get(attribute) or UNKNOWN_ROLE for attribute in by)
        for tid, stored in store.transcripts().items()
    }


def ordered_groups(labels: set[str]) -> list[str]:
    """Lead, partner, stakeholder first, then other values by name, unknown last; part by part for crossed groups."""

    def key(label: str) -> tuple:
        return tuple(
            (ROLE_ORDER.index(part) if part in ROLE_ORDER else len(ROLE_ORDER) + (1 if part == UNKNOWN_ROLE else 0), part)
            for part in label.split(" / ")
        )

    return sorted(labels, key=key)


def theme_frequency(store: Store, codebook: Codebook, frame: "pd.DataFrame", *, by: list[str] | tuple[str, ...] = ("role",)) -> "pd.DataFrame":
    """Per code: respondents who raised it, their % of the group, and coded segments, per group and in total.

    Groups are the values of the ``by`` attributes (two or more are crossed). The first
    row, ``N``, gives the respondents (transcripts) per group and their respondent segments.
    A parent code counts a segment or a respondent once, however many children apply.
    """
    import pandas as pd

    by = list(by)
    labels = group_labels(store, by)
    groups = ordered_groups(set(labels.values()))
    respondents = {group: sum(1 for label in labels.values() if label == group) for group in groups}
    segment_counts: dict[str, int] = defaultdict(int)
    for row in store.coded_segments():
        segment_counts[labels[row["transcript_id"]]] += 1
    frame = frame.assign(group=frame["transcript"].map(labels))
    columns = ["label", "depth"]
    for group in [*groups, "All"]:
        columns += [f"{group}: respondents", f"{group}: %", f"{group}: segments"]
    rows = {}
    n_row: list = ["respondents (N)", -1]
    for group in groups:
        n_row += [respondents[group], 100.0 if respondents[group] else None, segment_counts[group]]
    n_row += [len(labels), 100.0 if labels else None, sum(segment_counts.values())]
    rows["N"] = n_row
    for code, depth in codebook.walk():
        selected = frame[frame["code"].isin({code.id, *codebook.descendants(code.id)})]
        row: list = [code.label, depth]
        for group in groups:
            part = selected[selected["group"] == group]
            raised = part["transcript"].nunique()
            row += [raised, round(100.0 * raised / respondents[group], 1) if respondents[group] else None, part["segment_id"].nunique()]
        raised = selected["transcript"].nunique()
        row += [raised, round(100.0 * raised / len(labels), 1) if labels else None, selected["segment_id"].nunique()]
        rows[code.id] = row
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table.index.name = "code"
    table.attrs.update(by=by, groups=groups)
    return table


def cooccurrence(frame: "pd.DataFrame", codebook: Codebook) -> "pd.DataFrame":
    """Pairs of codes applied to the same segments: n1, n2, n12 and Jaccard n12 / (n1 + n2 - n12)."""
    import pandas as pd

    segments_of = frame.groupby("code")["segment_id"].apply(set).to_dict()
    order = [code.id for code, _depth in codebook.walk() if code.id in segments_of]
    records = []
    for i, first in enumerate(order):
        for second in order[i + 1 :]:
            n1, n2 = len(segments_of[first]), len(segments_of[second])
            n12 = len(segments_of[first] & segments_of[second])
            if n12:
                records.append((first, second, n1, n2, n12, round(n12 / (n1 + n2 - n12), 4)))
    table = pd.DataFrame.from_records(records, columns=["code_1", "code_2", "n1", "n2", "n12", "jaccard"])
    return table.sort_values(["n12", "jaccard"], ascending=False, kind="stable").reset_index(drop=True)


def respondent_matrix(store: Store, codebook: Codebook, frame: "pd.DataFrame") -> "pd.DataFrame":
    """Framework matrix: one row per transcript with its attributes, one column per code (coded segments; parents roll up)."""
    import pandas as pd

    transcripts = store.transcripts()
    attributes = sorted({key for stored in transcripts.values() for key in stored.metadata})
    records = []
    for transcript_id, stored in transcripts.items():
        own = frame[frame["transcript"] == transcript_id]
        row = {"transcript": transcript_id, **{attribute: stored.metadata.get(attribute, "") for attribute in attributes}}
        for code, _depth in codebook.walk():
            row[code.id] = own[own["code"].isin({code.id, *codebook.descendants(code.id)})]["segment_id"].nunique()
        records.append(row)
    code_columns = [code.id for code, _depth in codebook.walk()]
    table = pd.DataFrame.from_records(records, columns=["transcript", *attributes, *code_columns])
    table.attrs["code_columns"] = code_columns
    return table


def excerpts(
    store: Store,
    codebook: Codebook,
    frame: "pd.DataFrame",
    *,
    code: str | None = None,
    where: dict[str, str] | None = None,
) -> "pd.DataFrame":
    """Every coded segment with its transcript, speaker, metadata and text; filter by code (with children) and attributes."""
    import pandas as pd

    transcripts = store.transcripts()
    attributes = sorted({key for stored in transcripts.values() for key in stored.metadata})
    if code is not None:
        if code not in codebook:
            raise AnalysisError(f"no code '{code}' in the codebook", fix="see 'qualcode codebook' for the ids")
        frame = frame[frame["code"].isin({code, *codebook.descendants(code)})]
    records = []
    for row in frame.itertuples(index=False):
        metadata = transcripts[row.transcript].metadata
        if where and any((metadata.get(key) or UNKNOWN_ROLE) != value for key, value in where.items()):
            continue
        records.append(
            {
                "transcript": row.transcript,
                "segment": row.segment,
                "speaker": row.speaker,
                "code": row.code,
                "label": codebook[row.code].label,
                **{attribute: metadata.get(attribute, "") for attribute in attributes},
                "text": row.text,
                "start": row.start,
                "end": row.end,
                "status": row.status,
                "coders": row.coders,
                "confidence": row.confidence,
            }
        )
    columns = ["transcript", "segment", "speaker", "code", "label", *attributes, "text", "start", "end", "status", "coders", "confidence"]
    return pd.DataFrame.from_records(records, columns=columns)


def codebook_table(codebook: Codebook) -> "pd.DataFrame":
    import pandas as pd

    records = [
        {
            "id": code.id,
            "label": code.label,
            "parent": code.parent or "",
            "level": depth,
            "definition": code.description,
            "include": code.include,
            "exclude": code.exclude,
            "keywords": ", ".join(code.keywords),
            "phrases": ", ".join(code.phrases),
            "examples": " | ".join(code.examples),
        }
        for code, depth in codebook.walk()
    ]
    return pd.DataFrame.from_records(records, columns=["id", "label", "parent", "level", "definition", "include", "exclude", "keywords", "phrases", "examples"])
