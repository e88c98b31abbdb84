"""The quotes appendix (quotes.md): per code, its definition and its excerpts grouped by respondent type."""

from __future__ import annotations

from typing import Sequence

from qualcode.analysis.counts import Coding, GroupOrders, ordered_groups
from qualcode.codebook import Codebook
from qualcode.ingest.segmenting import neighbours
from qualcode.ingest.transcripts import UNKNOWN_ROLE
from qualcode.store import Store

SHORT_ANSWER = 6  # words: an answer this short ("Yes.", "Yeah. Massively.") is quoted with the question it answers


def _questions(store: Store, found: Sequence[Coding]) -> dict[int, str]:
    """The interviewer's turn before each short coded answer."""
    wanted = {coding.segment_id for coding in found if len(coding.text.split()) < SHORT_ANSWER}
    questions: dict[int, str] = {}
    for transcript_id in sorted({coding.transcript for coding in found if coding.segment_id in wanted}):
        rows = store.segments(transcript_id)
        for row, (question, _previous) in zip(rows, neighbours(rows)):
            if row.id in wanted and question is not None:
                speaker = rows[question].speaker
                questions[row.id] = f"{speaker + ': ' if speaker else ''}{' '.join(rows[question].text.split())}"
    return questions


def quotes_markdown(store: Store, codebook: Codebook, found: Sequence[Coding], *, status: str, orders: GroupOrders | None = None) -> str:
    """Per code: its definition and its excerpts grouped by respondent type, with transcript ids."""
    transcripts = store.transcripts()
    questions = _questions(store, found)
    lines = [f"# Quotes: {codebook.name}", ""]
    lines.append(f"Codings counted: {status}. Each quote gives its transcript and segment number.")
    lines.append("")
    by_code: dict[str, list[Coding]] = {}
    for coding in found:
        by_code.setdefault(coding.code, []).append(coding)
    for code, depth in codebook.walk():
        selected = by_code.get(code.id, [])
        lines.append(f"{'#' * min(6, depth + 2)} {code.label} (`{code.id}`)")
        lines.append("")
        if code.description:
            lines.append(f"*Definition:* {code.description}")
            lines.append("")
        if not selected:
            if not code.children:
                lines.append("No coded excerpts.")
                lines.append("")
            continue
        roles: dict[str, list[Coding]] = {}
        seen: set[int] = set()
        for coding in selected:
            if coding.segment_id in seen:
                continue
            seen.add(coding.segment_id)
            role = transcripts[coding.transcript].metadata.get("role") or UNKNOWN_ROLE
            roles.setdefault(role, []).append(coding)
        for role in ordered_groups(set(roles), ["role"], orders):
            rows = roles[role]
            respondents = len({row.transcript for row in rows})
            lines.append(f"**{role}** ({respondents} respondent{'s' if respondents != 1 else ''}, {len(rows)} excerpt{'s' if len(rows) != 1 else ''})")
            lines.append("")
            for row in rows:
                text = " ".join(row.text.split())
                if row.segment_id in questions:  # a short answer means little alone: the question it answers first
                    lines.append(f"> *{questions[row.segment_id]}*")
                    lines.append(">")
                lines.append(f"> {text}")
                lines.append(f"> — {row.transcript}, segment {row.segment}")
                lines.append("")
                if row.memo:
                    lines.append(f"*Memo:* {row.memo}")
                    lines.append("")
    return "\n".join(lines).rstrip() + "\n"
