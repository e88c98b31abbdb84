"""The project database behind one class: every SQL statement qualcode runs is a ``Store`` method.

Machine suggestions and human decisions live in separate tables. Decisions are
append-only (an undo is a new row pointing at the one it undoes) and every one carries a
coder, a timestamp and a batch id from the database's own numbering. Each transcript is
written in one transaction. Statements are portable (``"end"`` quoted, ``RETURNING``
rather than ``lastrowid``); what one database does differently sits in its dialect
module (``sqlite.py``, ``postgres.py``).

``Store`` is assembled from parts that change for different reasons: ``base.py`` (connection, transactions, schema,
checks), ``transcripts.py`` (transcripts and segments), ``codings.py`` (suggestions and decisions) and ``learning.py``
(model runs and the vector cache) and ``leases.py`` (locks that survive reconnects and crashes). Callers only ever see
``Store``.
"""

from __future__ import annotations

from qualcode.store.base import TABLES, now
from qualcode.store.codings import CodingTables
from qualcode.store.learning import LearningTables
from qualcode.store.leases import Lease, LeaseLost, LeaseTables, LeaseTaken
from qualcode.store.records import (
    DecisionRow,
    Entry,
    ImportOutcome,
    ModelRun,
    Note,
    SegmentRow,
    SegmentState,
    StoredSuggestion,
    StoredTranscript,
)
from qualcode.store.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION", "DecisionRow", "Entry", "ImportOutcome", "Lease", "LeaseLost", "LeaseTaken", "ModelRun", "Note", "SegmentRow", "SegmentState",
    "Store", "StoredSuggestion", "StoredTranscript", "TABLES", "now",
]


class Store(CodingTables, LearningTables, LeaseTables):
    """The project's database."""
