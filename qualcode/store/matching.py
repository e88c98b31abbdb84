"""Which segment of a re-imported transcript is which segment of the stored one, so decisions stay where they were made.

Text alone is not enough: interviews repeat short answers ("Yes.", "I don't know."), and when two
answers read the same, matching the first new one to the first old one moves a decision to the
wrong answer as soon as anything before them is deleted. Segments are therefore aligned as
sequences (difflib's longest matching blocks: order and neighbourhood count), and a match is
trusted only where nothing else could be meant: no other old segment with the same text carries
different decisions, or this one's neighbours fit strictly better than any other's. Where it is
not sure, the new segment starts undecided (so it comes back to review) and every old one keeps
its decisions, retired; the import says how many.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Hashable, Sequence

CONTEXT = 2  # neighbours on each side that count towards how well a match fits


@dataclass
class Matching:
    reused: dict[int, int] = field(default_factory=dict)  # new index -> old index
    ambiguous: list[int] = field(default_factory=list)  # new indices whose old segment could not be told


def match_segments(old: Sequence[str], new: Sequence[str], signatures: Sequence[Hashable]) -> Matching:
    """Match new segments to old ones with the same text; ``signatures[i]`` stands for old segment i's decisions
    (equal signatures are interchangeable, so choosing between them can lose nothing)."""
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
    for j in sorted(proposal):
        i = proposal[j]
        rivals = [other for other in by_text[old[i]] if other != i and signatures[other] != signatures[i]]
        if rivals:
            fit = _fit(old, new, i, j)
            if any(_fit(old, new, other, j) >= fit for other in rivals):
                result.ambiguous.append(j)
                continue
        result.reused[j] = i
    return result


def _fit(old: Sequence[str], new: Sequence[str], i: int, j: int) -> int:
    """How many of the neighbours around old segment i and new segment j agree (the edges of a file agree too)."""
    score = 0
    for step in (-1, 1):
        for distance in range(1, CONTEXT + 1):
            a, b = i + step * distance, j + step * distance
            left = old[a] if 0 <= a < len(old) else None
            right = new[b] if 0 <= b < len(new) else None
            if left != right:
                break
            score += 1
            if left is None:
                break
    return score
