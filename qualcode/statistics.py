"""Agreement statistics as pure functions: Cohen's kappa, Krippendorff's alpha, P/R/F1."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa for two raters' labels; None when chance agreement is total (both constant and equal)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same units")
    n = len(a)
    if n == 0:
        return None
    observed = sum(1 for x, y in zip(a, b) if x == y) / n
    counts_a, counts_b = Counter(a), Counter(b)
    expected = sum(counts_a[label] * counts_b[label] for label in set(counts_a) | set(counts_b)) / (n * n)
    if expected == 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha_nominal(units: Sequence[Sequence[object | None]]) -> float | None:
    """Krippendorff's alpha for nominal data. ``units`` holds, per unit, each coder's value (None if missing).

    Units with fewer than two values are not pairable and are left out. None when there is no
    disagreement to expect (a single value throughout).
    """
    coincidence: dict[tuple[object, object], float] = defaultdict(float)
    for unit in units:
        values = [value for value in unit if value is not None]
        m = len(values)
        if m < 2:
            continue
        for i, first in enumerate(values):
            for j, second in enumerate(values):
                if i != j:
                    coincidence[(first, second)] += 1.0 / (m - 1)
    totals: dict[object, float] = defaultdict(float)
    for (first, _second), weight in coincidence.items():
        totals[first] += weight
    n = sum(totals.values())
    if n <= 1:
        return None
    observed = sum(weight for (first, second), weight in coincidence.items() if first != second)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def precision_recall_f1(reference: Sequence[int], predicted: Sequence[int]) -> tuple[float | None, float | None, float | None]:
    tp = sum(1 for r, p in zip(reference, predicted) if r and p)
    fp = sum(1 for r, p in zip(reference, predicted) if not r and p)
    fn = sum(1 for r, p in zip(reference, predicted) if r and not p)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = 0.0 if (tp + fp or tp + fn) else None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def kappa_or_zero(reference: Iterable[Any], predicted: Iterable[Any]) -> float:
    """Kappa with 'undefined' read as no agreement beyond chance, for choosing between models."""
    value = cohen_kappa(list(map(int, reference)), list(map(int, predicted)))
    return 0.0 if value is None else float(value)
