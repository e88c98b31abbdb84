"""Suggestions and decisions: what the machine suggested for each segment, and what coders decided, append-only.

Decisions are never updated or deleted: an undo is a new row pointing at the one it undoes, and every decision carries a
coder, a timestamp and a batch id from the database's own numbering."""

from __future__ import annotations

import uuid
from typing import Any, Iterable, Sequence

from qualcode.errors import ProjectError, SegmentGone
from qualcode.store.base import _json, _operation, integer, now, verdict
from qualcode.store.base import confidence as _confidence
from qualcode.store.base import source as _source
from qualcode.store.records import DecisionRow, Entry, Note, SegmentState, StoredSuggestion
from qualcode.store.transcripts import TranscriptTables
from qualcode.suggestion import SUGGEST_THRESHOLD, Evidence, Suggestion
from qualcode.vocabulary import Mark, Method, Source, Verdict

VERDICTS = frozenset(Verdict)

MARKS = frozenset(Mark)

_DECISION_COLUMNS = "id, segment_id, code, verdict, coder, method, note, undoes, batch, created_at"

_LEARNED_FROM = (Verdict.ACCEPTED.value, Verdict.REJECTED.value, Verdict.ADDED.value, Mark.REVIEWED.value)


def _decision(row: Sequence[Any]) -> DecisionRow:
    key = row[0]
    return DecisionRow(integer(row[0], "decisions", key, "id"), integer(row[1], "decisions", key, "segment_id"), row[2],
                       verdict(row[3], "decisions", key), row[4], row[5], row[6], row[7], integer(row[8], "decisions", key, "batch"), row[9])


class CodingTables(TranscriptTables):
    """The ``suggestions``, ``batches`` and ``decisions`` tables."""

    @_operation
    def replace_suggestions(self, transcript_id: str, rows: Sequence[tuple[int, Sequence[Suggestion]]], *, pipeline_version: str) -> None:
        """Replace the suggestions of one transcript's segments in one transaction."""
        with self.transaction():
            self._q("DELETE FROM suggestions WHERE segment_id IN (SELECT id FROM segments WHERE transcript_id = ?)", (transcript_id,))
            self._insert_suggestions(rows, pipeline_version, now())

    @_operation
    def replace_segment_suggestions(self, rows: Sequence[tuple[int, Sequence[Suggestion]]], *, pipeline_version: str) -> None:
        """Replace the suggestions of the given segments, in one transaction."""
        with self.transaction():
            self._many("DELETE FROM suggestions WHERE segment_id = ?", [(segment_id,) for segment_id, _items in rows])
            self._insert_suggestions(rows, pipeline_version, now())

    @_operation
    def suggestions(self, *, evidence: bool = True, segment_ids: Sequence[int] | None = None) -> list[StoredSuggestion]:
        """Current suggestions, in transcript, position and code order: all of them, or those of ``segment_ids``.

        Without ``evidence`` the evidence column is not read at all, which is most of the work
        when a queue or a table only needs codes and confidences.
        """
        sql = f"""SELECT s.segment_id, s.code, s.confidence, {"s.evidence" if evidence else "''"}, s.source, g.transcript_id, s.pipeline_version,
                         s.applies FROM suggestions s JOIN segments g ON g.id = s.segment_id WHERE g.retired_at IS NULL"""
        if segment_ids is None:
            rows = self._q(sql + " ORDER BY g.transcript_id, g.position, s.code").fetchall()
        else:
            rows = []
            for start in range(0, len(segment_ids), 500):
                chunk = list(segment_ids[start : start + 500])
                rows += self._q(sql + f" AND s.segment_id IN ({', '.join('?' * len(chunk))}) ORDER BY g.transcript_id, g.position, s.code",
                                chunk).fetchall()
        found = []
        for segment_id, code, confidence, raw, source, transcript_id, version, applies in rows:
            parsed = self._evidence(raw, segment_id, code) if evidence else []
            key = (segment_id, code)
            suggestion = Suggestion(code, _confidence(confidence, "suggestions", key), parsed, _source(source, "suggestions", key),
                                    None if applies is None else bool(applies))
            found.append(StoredSuggestion(integer(segment_id, "suggestions", key, "segment_id"), transcript_id, suggestion, version))
        return found

    @_operation
    def suggestions_by_segment(self, *, min_confidence: float = 0.0) -> dict[int, list[Suggestion]]:
        """Every current suggestion at or above ``min_confidence``, by segment, without evidence and in no order: what a
        review queue is made from, read in one pass (a large project holds tens of thousands)."""
        found: dict[int, list[Suggestion]] = {}
        rows = self._q("SELECT s.segment_id, s.code, s.confidence, s.source, s.applies FROM suggestions s "
                       "JOIN segments g ON g.id = s.segment_id WHERE g.retired_at IS NULL AND s.confidence >= ?", (min_confidence,)).fetchall()
        for segment_id, code, confidence, source, applies in rows:
            key = (segment_id, code)
            found.setdefault(integer(segment_id, "suggestions", key, "segment_id"), []).append(
                Suggestion(code, _confidence(confidence, "suggestions", key), [], _source(source, "suggestions", key),
                           None if applies is None else bool(applies)))
        return found

    @_operation
    def confidences(self, transcript_id: str) -> list[tuple[int, str, float]]:
        """(segment, code, confidence) of one transcript's current suggestions: what a table of codings needs, and no more."""
        return [
            (integer(row[0], "suggestions", (row[0], row[1]), "segment_id"), row[1], _confidence(row[2], "suggestions", (row[0], row[1])))
            for row in self._q(
                "SELECT s.segment_id, s.code, s.confidence FROM suggestions s JOIN segments g ON g.id = s.segment_id "
                "WHERE g.transcript_id = ? AND g.retired_at IS NULL", (transcript_id,)
            ).fetchall()
        ]

    @staticmethod
    def _evidence(raw: str, segment_id: int, code: str) -> list[Evidence]:
        items = _json(raw, "suggestions", f"{segment_id}/{code}")
        try:
            return [Evidence.from_json(item) for item in items]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProjectError(f"damaged evidence in table 'suggestions', row {segment_id}/{code} ({exc})",
                               fix="run 'qualcode code' again to recompute the suggestions, or restore a backup") from None

    @_operation
    def suggestion_reach(self, rollup: dict[str, list[str]], *, min_confidence: float = 0.0) -> list[tuple[str, str, int]]:
        """Per (code, transcript), the segments suggested that code or any code it counts (``rollup[code]``: the code
        and its descendants), each segment once, where the machine says the code applies (``Suggestion.says_yes``).
        Counted by the database, so memory does not grow with the corpus."""
        pairs = [(code, member) for code, members in rollup.items() for member in members]
        found: list[tuple[str, str, int]] = []
        for start in range(0, len(pairs), 4000):  # bounded parameters per statement
            chunk = pairs[start : start + 4000]
            values = ", ".join("(?, ?)" for _ in chunk)
            # CROSS JOIN: SQLite then joins in the order written, one pass over the suggestions (its planner put the
            # dozen codes outside and read every suggestion once per code); other databases plan it as any join.
            found.extend(
                (row[0], row[1], int(row[2]))
                for row in self._q(
                    f"""WITH rollup (code, member) AS (VALUES {values})
                        SELECT r.code, g.transcript_id, COUNT(DISTINCT s.segment_id)
                        FROM suggestions s CROSS JOIN rollup r CROSS JOIN segments g
                        WHERE r.member = s.code AND g.id = s.segment_id AND g.retired_at IS NULL AND s.confidence >= ?
                          AND (s.applies = 1 OR (s.applies IS NULL AND (s.source = ? OR s.confidence >= ?)))
                        GROUP BY r.code, g.transcript_id""",
                    [value for pair in chunk for value in pair] + [min_confidence, Source.RULES.value, SUGGEST_THRESHOLD],
                ).fetchall()
            )
        return found

    @_operation
    def counts(self) -> dict[str, int]:
        return {
            "transcripts": self._one("SELECT COUNT(*) FROM transcripts"),
            "segments": self._one("SELECT COUNT(*) FROM segments WHERE codable = 1 AND retired_at IS NULL"),
            "suggestions": self._one("SELECT COUNT(*) FROM suggestions"),
            "decisions": self._one("SELECT COUNT(*) FROM decisions"),
        }

    def add_decision(
        self,
        segment_id: int,
        code: str | None,
        verdict: str,
        *,
        coder: str,
        method: str = Method.MANUAL,
        note: str | None = None,
        undoes: int | None = None,
    ) -> int:
        """Append one decision and commit it at once."""
        return self.record([Entry(segment_id, code, verdict, note, undoes)], coder=coder, method=method)[0]

    def record(self, entries: Sequence[Entry], *, coder: str, method: str = Method.MANUAL) -> list[int]:
        """Append the decisions of one action in one transaction; they share a batch id, so one undo reverts them all.

        The action gets a key of its own before the first attempt: when a lost connection is
        retried, a recording that did reach the database is found by its key, not made twice.
        """
        if not coder or not coder.strip():
            raise ValueError("a decision needs a coder name")
        for entry in entries:
            if entry.verdict in VERDICTS and not entry.code:
                raise ValueError(f"a '{entry.verdict}' decision needs a code")
            if entry.verdict not in VERDICTS and entry.verdict not in MARKS:
                raise ValueError(f"unknown verdict '{entry.verdict}'")
        if not entries:
            return []
        return self._record(entries, coder, str(method), uuid.uuid4().hex)

    @_operation
    def _record(self, entries: Sequence[Entry], coder: str, method: str, key: str) -> list[int]:
        stamp = now()
        with self.transaction():
            # A re-import may have replaced the segment since it was read (a coder's screen, a batch): say so, record nothing.
            wanted = sorted({entry.segment_id for entry in entries if entry.verdict != Mark.UNDO})
            if wanted:
                current = {int(row[0]) for row in self._q(
                    f"SELECT id FROM segments WHERE retired_at IS NULL AND id IN ({', '.join('?' * len(wanted))})", wanted).fetchall()}
                if len(current) < len(wanted):
                    raise SegmentGone([segment_id for segment_id in wanted if segment_id not in current])
            batch = self._one(
                "INSERT INTO batches (coder, method, client_key, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (client_key) DO NOTHING RETURNING id",
                (coder, method, key, stamp),
            )
            if batch is None:
                existing = self._one("SELECT id FROM batches WHERE client_key = ?", (key,))
                return [int(row[0]) for row in self._q("SELECT id FROM decisions WHERE batch = ? ORDER BY id", (existing,)).fetchall()]
            ids = []
            for entry in entries:
                ids.append(int(self._one(
                    "INSERT INTO decisions (segment_id, code, verdict, coder, method, note, undoes, batch, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (entry.segment_id, entry.code, str(entry.verdict), coder, method, entry.note, entry.undoes, batch, stamp),
                )))
        return ids

    def _undone(self, coder: str | None = None) -> set[int]:
        sql = "SELECT undoes FROM decisions WHERE undoes IS NOT NULL"
        params: tuple[Any, ...] = ()
        if coder is not None:
            sql += " AND coder = ?"
            params = (coder,)
        return {int(row[0]) for row in self._q(sql, params).fetchall()}

    @_operation
    def coder_states(self, coder: str, segment_ids: Iterable[int] | None = None) -> dict[int, SegmentState]:
        """What one coder has decided on each segment, undone rows left out."""
        undone = self._undone(coder)
        sql = f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE coder = ? AND verdict != 'undo'"
        params: list[Any] = [coder]
        if segment_ids is not None:
            ids = list(segment_ids)
            if not ids:
                return {}
            sql += f" AND segment_id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        states: dict[int, SegmentState] = {}
        for row in self._q(sql + " ORDER BY id", params).fetchall():
            decision = _decision(row)
            if decision.id in undone:
                continue
            state = states.setdefault(decision.segment_id, SegmentState())
            if decision.verdict == Mark.REVIEWED:
                state.reviewed = True
            elif decision.verdict == Mark.NOTE:
                state.notes.append(decision.note or "")
            elif decision.code is not None:
                state.codes[decision.code] = decision.verdict
                state.methods[decision.code] = decision.method
        return states

    def reviewed_segments(self) -> set[int]:
        """The segments some coder has marked reviewed (and not undone)."""
        reviewed: set[int] = set()
        for coder in self.coders():
            reviewed.update(segment_id for segment_id, state in self.coder_states(coder).items() if state.reviewed)
        return reviewed

    @_operation
    def last_batch(self, coder: str) -> list[DecisionRow]:
        """The coder's most recent action that has not been undone (its decisions), or []."""
        undone = self._undone(coder)
        batches = self._q("SELECT DISTINCT batch FROM decisions WHERE coder = ? AND verdict != 'undo' ORDER BY batch DESC", (coder,)).fetchall()
        for (batch,) in batches:
            rows = self._q(
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE batch = ? AND coder = ? AND verdict != 'undo' ORDER BY id", (batch, coder)
            ).fetchall()
            live = [decision for decision in map(_decision, rows) if decision.id not in undone]
            if live:
                return live
        return []

    @_operation
    def training_decisions(self) -> int:
        """Decisions that can teach the models: the count a model run records and retraining compares with."""
        placeholders = ", ".join("?" * len(_LEARNED_FROM))
        return int(self._one(f"SELECT COUNT(*) FROM decisions WHERE verdict IN ({placeholders})", _LEARNED_FROM))

    @_operation
    def coders(self) -> list[str]:
        return [row[0] for row in self._q("SELECT DISTINCT coder FROM decisions ORDER BY coder").fetchall()]

    @_operation
    def latest_decisions(self, coder: str | None = None) -> dict[tuple[int, str, str], DecisionRow]:
        """Each coder's latest standing verdict per (segment, code), undone rows excluded."""
        undone = self._undone()
        columns = ", ".join(f"d.{column.strip()}" for column in _DECISION_COLUMNS.split(","))
        sql = f"""SELECT {columns} FROM decisions d JOIN segments g ON g.id = d.segment_id
                  WHERE d.code IS NOT NULL AND d.verdict IN (?, ?, ?) AND g.retired_at IS NULL"""
        params: list[Any] = [Verdict.ACCEPTED.value, Verdict.REJECTED.value, Verdict.ADDED.value]
        if coder is not None:
            sql += " AND d.coder = ?"
            params.append(coder)
        latest: dict[tuple[int, str, str], DecisionRow] = {}
        for row in self._q(sql + " ORDER BY d.id", params).fetchall():
            decision = _decision(row)
            if decision.id in undone or decision.code is None:
                continue
            latest[(decision.segment_id, decision.code, decision.coder)] = decision
        return latest

    @_operation
    def decisions(self, coder: str | None = None) -> list[DecisionRow]:
        """Every decision row, oldest first (undo rows and undone rows included)."""
        sql = f"SELECT {_DECISION_COLUMNS} FROM decisions"
        params: tuple[Any, ...] = ()
        if coder is not None:
            sql += " WHERE coder = ?"
            params = (coder,)
        return [_decision(row) for row in self._q(sql + " ORDER BY id", params).fetchall()]

    @_operation
    def notes(self, coder: str | None = None) -> list[Note]:
        """Memos written in review that have not been undone, oldest first."""
        undone = self._undone()
        return [
            Note(decision.id, decision.segment_id, decision.coder, decision.note or "", decision.created_at)
            for decision in self.decisions(coder)
            if decision.verdict == Mark.NOTE and decision.id not in undone and (decision.note or "").strip()
        ]
