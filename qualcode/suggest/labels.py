"""What the researcher's decisions teach: per code, a yes, a no or nothing for every segment someone decided on."""

from __future__ import annotations

from typing import Iterable

from qualcode.store import Store
from qualcode.vocabulary import Verdict


def training_labels(store: Store, codes: Iterable[str]) -> tuple[list[int], dict[str, list[int | None]], int]:
    """Segment ids with any decision, and per code a label for each: 1, 0, or None (unknown).

    All coders' standing decisions are pooled; where coders disagree on a segment and code,
    the most recent decision wins.
    """
    codes = list(codes)
    latest: dict[tuple[int, str], tuple[int, str]] = {}
    for (segment_id, code, _coder), standing in store.latest_decisions().items():
        previous = latest.get((segment_id, code))
        if previous is None or standing.id > previous[0]:
            latest[(segment_id, code)] = (standing.id, standing.verdict)
    reviewed = store.reviewed_segments()
    # In transcript order, not by id: ids are the database's numbering, and cross-validation folds (so thresholds and
    # calibration) follow the order of the examples, which must not differ between SQLite and PostgreSQL.
    place = {row.id: (row.transcript_id, row.position) for row in store.codable_segments()}
    segment_ids = sorted((reviewed | {segment_id for segment_id, _code in latest}) & place.keys(), key=place.__getitem__)
    labels: dict[str, list[int | None]] = {}
    for code in codes:
        values: list[int | None] = []
        for segment_id in segment_ids:
            decision = latest.get((segment_id, code))
            if decision is not None:
                values.append(1 if Verdict(decision[1]).applies else 0)
            else:
                values.append(0 if segment_id in reviewed else None)
        labels[code] = values
    return segment_ids, labels, store.training_decisions()
