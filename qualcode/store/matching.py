"""Which segment of a re-imported transcript is which segment of the stored one, so decisions stay where they were made.

Text alone is not enough: interviews repeat short answers ("Yes.", "I don't know."), and when two
answers read the same, matching the first new one to the first old one moves a decision to the
wrong answer as soon as anything before them is deleted. Segments are therefore aligned as
sequences (difflib's longest matching blocks: order and neighbourhood count), and a match is
trusted only where nothing else could be meant: no other old segment with the same text carries
different decisions, or reading the edit with this one kept lines up strictly more of the file
than with any other (the longest common subsequence through the pair). Where it is
not sure, the new segment starts undecided (so it comes back to review) and every old one keeps
its decisions, retired; the import says how many. One thing breaks a tie: an answer belongs to the
question before it, so where the sequence alone cannot tell two same answers apart (a question and its
answer deleted between them, or the sequence's longest run joins an answer to the wrong question), the one
that still follows the same question is the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Hashable, Sequence

MAX_CELLS = 4_000_000  # old x new segments past which a tie is not weighed (a few seconds of work): nothing moves then


@dataclass
class Matching:
    reused: dict[int, int] = field(default_factory=dict)  # new index -> old index
    ambiguous: list[int] = field(default_factory=list)  # new indices whose old segment could not be told


def match_segments(old: Sequence[str], new: Sequence[str], signatures: Sequence[Hashable],
                   old_questions: Sequence[str | None] | None = None, new_questions: Sequence[str | None] | None = None) -> Matching:
    """Match new segments to old ones with the same text; ``signatures[i]`` stands for old segment i's decisions
    (equal signatures are interchangeable, so choosing between them can lose nothing). ``old_questions[i]`` and
    ``new_questions[j]``, when given, are the texts of the question each segment answers (the interviewer's turn
    before it), which settle a tie the sequence leaves."""
    matcher = SequenceMatcher(None, list(old), list(new), autojunk=False)
    proposal: dict[int, int] = {}
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            proposal[b + k] = a + k
    by_text: dict[str, list[int]] = defaultdict(list)
    for index, text in enumerate(old):
        by_text[text].append(index)
    used = set(proposal.values())
    # Same text outside the aligned blocks (moved segments): the nearest free old one by position.
    for j, text in enumerate(new):
        if j in proposal:
            continue
        free = [i for i in by_text.get(text, ()) if i not in used]
        if free:
            i = min(free, key=lambda i: abs(i - j))
            proposal[j] = i
            used.add(i)
    result = Matching()
    taken = set(proposal.values())
    through: _Through | None = None
    for j in sorted(proposal):
        i = proposal[j]
        rivals = [other for other in by_text[old[i]] if other != i and signatures[other] != signatures[i]]
        if rivals:
            through = through or _Through(old, new)
            if not through.known:  # too long to weigh: nothing moves, the old segments keep their decisions
                result.ambiguous.append(j)
                continue
            score = through(i, j)
            follows = _follows(i, j, old_questions, new_questions)
            # every old segment of this text that reads the edit as well (or, where this one does not, follows the
            # same question), those with this one's decisions too: the one that follows the question may be among them
            contenders = [other for other in by_text[old[i]] if other != i
                          and (through(other, j) >= score or (not follows and _follows(other, j, old_questions, new_questions)))]
            if any(signatures[other] != signatures[i] for other in contenders):
                chosen = _same_question(j, [i, *contenders], old_questions, new_questions)
                if chosen is None or (chosen != i and chosen in taken and signatures[chosen] != signatures[i]):
                    result.ambiguous.append(j)
                    continue
                if chosen not in taken:
                    taken.discard(i)
                    taken.add(chosen)
                    i = chosen
        result.reused[j] = i
    return result


class _Through:
    """How many segments the best alignment of old and new keeps in place when old segment i is new segment j: the
    longest common subsequence before them, plus one, plus the longest after them. Two old segments that score the
    same are equally good readings of the edit, whatever the neighbours nearby say."""

    def __init__(self, old: Sequence[str], new: Sequence[str]) -> None:
        self.known = len(old) * len(new) <= MAX_CELLS
        self.n, self.m = len(old), len(new)
        if not self.known:
            return
        codes: dict[str, int] = {}
        a = [codes.setdefault(text, len(codes)) for text in old]
        b = [codes.setdefault(text, len(codes)) for text in new]
        self.before = _lcs_table(a, b)
        self.after = _lcs_table(a[::-1], b[::-1])

    def __call__(self, i: int, j: int) -> int:
        # before[i][j]: LCS of old[:i] and new[:j]; after[n-1-i][m-1-j]: LCS of old[i+1:] and new[j+1:]
        return self.before[i][j] + 1 + self.after[self.n - 1 - i][self.m - 1 - j]


def _lcs_table(a: Sequence[int], b: Sequence[int]) -> list[list[int]]:
    """table[i][j]: the length of the longest common subsequence of a[:i] and b[:j]."""
    table = [[0] * (len(b) + 1)]
    for x in a:
        above = table[-1]
        row = [0]
        left = 0
        for j, y in enumerate(b):
            left = above[j] + 1 if x == y else (left if left > above[j + 1] else above[j + 1])
            row.append(left)
        table.append(row)
    return table


def _follows(i: int, j: int, old_questions: Sequence[str | None] | None, new_questions: Sequence[str | None] | None) -> bool:
    """Whether old segment i follows the question new segment j follows (False when that is not known)."""
    return old_questions is not None and new_questions is not None and new_questions[j] is not None and old_questions[i] == new_questions[j]


def _same_question(j: int, candidates: Sequence[int], old_questions: Sequence[str | None] | None,
                   new_questions: Sequence[str | None] | None) -> int | None:
    """The one old segment among ``candidates`` that follows the question new segment j follows; None when none or
    several do (or the questions are not known)."""
    if old_questions is None or new_questions is None or new_questions[j] is None:
        return None
    same = [i for i in candidates if old_questions[i] == new_questions[j]]
    return same[0] if len(same) == 1 else None


def questions(texts: Sequence[str], codable: Sequence[bool]) -> list[str | None]:
    """For each segment, the text of the nearest segment before it that is not codable (the interviewer's question it
    answers); None before the first."""
    found: list[str | None] = []
    current: str | None = None
    for text, answer in zip(texts, codable):
        found.append(current)
        if not answer:
            current = text
    return found
