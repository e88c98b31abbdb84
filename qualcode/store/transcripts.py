"""Transcripts and their segments: importing a transcript (its segments matched to the stored ones, so decisions stay
where they were made), new transcripts in bulk, and reading segments back in transcript order."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable, Sequence

from qualcode.ingest.transcripts import Transcript
from qualcode.store.base import _IN_CHUNK, StoreBase, _operation, flag, integer, json_object, now, text
from qualcode.store.matching import match_segments, questions
from qualcode.store.records import ImportOutcome, SegmentRow, StoredTranscript
from qualcode.suggestion import Suggestion

_SEGMENT_COLUMNS = 'id, transcript_id, position, speaker, start, "end", text, codable'

# An upsert: two writers replacing one segment's suggestions at once (a background refit re-scoring it while `code`
# re-imports its transcript) leave the later's rows, never a duplicate-key error.
_INSERT_SUGGESTION = ("INSERT INTO suggestions (segment_id, code, confidence, evidence, source, pipeline_version, created_at, applies) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (segment_id, code) DO UPDATE SET confidence = excluded.confidence, "
                      "evidence = excluded.evidence, source = excluded.source, pipeline_version = excluded.pipeline_version, "
                      "created_at = excluded.created_at, applies = excluded.applies")


def _applies(item: Suggestion) -> int | None:
    return None if item.applies is None else int(item.applies)


def _segment(row: Sequence[Any]) -> SegmentRow:
    key = row[0]
    return SegmentRow(integer(row[0], "segments", key, "id"), row[1], integer(row[2], "segments", key, "position"), row[3],
                      integer(row[4], "segments", key, "start"), integer(row[5], "segments", key, "end"), text(row[6], "segments", key, "text"),
                      flag(row[7], "segments", key, "codable"))


class TranscriptTables(StoreBase):
    """The ``transcripts`` and ``segments`` tables (and the suggestions written with a transcript as it is imported)."""

    @_operation
    def transcripts(self) -> dict[str, StoredTranscript]:
        rows = self._q("SELECT id, path, format, content_hash, file_metadata, metadata FROM transcripts ORDER BY id").fetchall()
        return {
            row[0]: StoredTranscript(row[0], row[1], row[2], row[3], json_object(row[4], "transcripts", row[0]), json_object(row[5], "transcripts", row[0]))
            for row in rows
        }

    @_operation
    def transcript_states(self, ids: Sequence[str]) -> dict[str, StoredTranscript]:
        """The stored transcripts among ``ids`` (content hash and metadata, not text), looked up a chunk at a time."""
        found: dict[str, StoredTranscript] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = self._q(
                f"SELECT id, path, format, content_hash, file_metadata, metadata FROM transcripts WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            ).fetchall()
            for row in rows:
                found[row[0]] = StoredTranscript(row[0], row[1], row[2], row[3], json_object(row[4], "transcripts", row[0]), json_object(row[5], "transcripts", row[0]))
        return found

    @_operation
    def transcript_text(self, transcript_id: str) -> str:
        row = self._q("SELECT text FROM transcripts WHERE id = ?", (transcript_id,)).fetchone()
        if row is None:
            raise KeyError(transcript_id)
        return row[0]

    @_operation
    def set_metadata(self, transcript_id: str, metadata: dict[str, str]) -> None:
        self._q(
            "UPDATE transcripts SET metadata = ?, updated_at = ? WHERE id = ?",
            (json.dumps(metadata, ensure_ascii=False), now(), transcript_id)  # in metadata.csv's column order,
        )

    @_operation
    def save_transcript(self, transcript: Transcript, suggestions: Sequence[Sequence[Suggestion]], *, pipeline_version: str, path: str) -> ImportOutcome:
        """Insert or replace a transcript, its segments and their suggestions in one transaction.

        A segment whose text is unchanged keeps its id, so the decisions on it stay; which old segment a new one is
        follows order and neighbourhood, not text alone (``matching.py``). A vanished segment that has decisions
        is retired (kept, hidden), not deleted; so is each of the old segments a new one could not be told from.
        """
        stamp = now()
        metadata = json.dumps(transcript.metadata, ensure_ascii=False)
        file_metadata = json.dumps(transcript.file_metadata, ensure_ascii=False, sort_keys=True)
        with self.transaction():
            self._q(
                """INSERT INTO transcripts (id, path, format, content_hash, text, file_metadata, metadata, imported_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET path = excluded.path, format = excluded.format,
                       content_hash = excluded.content_hash, text = excluded.text,
                       file_metadata = excluded.file_metadata, metadata = excluded.metadata,
                       updated_at = excluded.updated_at""",
                (transcript.id, path, transcript.format, transcript.content_hash, transcript.text, file_metadata, metadata, stamp, stamp),
            )
            rows = self._q(
                "SELECT id, text, codable FROM segments WHERE transcript_id = ? AND retired_at IS NULL ORDER BY position", (transcript.id,)
            ).fetchall()
            old_ids = [int(row[0]) for row in rows]
            history: dict[int, list[tuple]] = defaultdict(list)
            for segment_id, coder, code, verdict, note in self._q(
                "SELECT d.segment_id, d.coder, d.code, d.verdict, d.note FROM decisions d JOIN segments g ON g.id = d.segment_id "
                "WHERE g.transcript_id = ? AND g.retired_at IS NULL ORDER BY d.id", (transcript.id,)
            ).fetchall():
                history[int(segment_id)].append((coder, code, verdict, note))
            old_texts, new_texts = [row[1] for row in rows], [segment.text for segment in transcript.segments]
            matching = match_segments(old_texts, new_texts, [tuple(history.get(segment_id, ())) for segment_id in old_ids],
                                      questions(old_texts, [bool(row[2]) for row in rows]),
                                      questions(new_texts, [segment.codable for segment in transcript.segments]))
            ids: list[int] = []
            for index, segment in enumerate(transcript.segments):
                reused = matching.reused.get(index)
                if reused is not None:
                    segment_id = old_ids[reused]
                    self._q(
                        'UPDATE segments SET position = ?, speaker = ?, start = ?, "end" = ?, codable = ? WHERE id = ?',
                        (segment.position, segment.speaker, segment.start, segment.end, int(segment.codable), segment_id),
                    )
                else:
                    segment_id = int(self._one(
                        'INSERT INTO segments (transcript_id, position, speaker, start, "end", text, codable) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id',
                        (transcript.id, segment.position, segment.speaker, segment.start, segment.end, segment.text, int(segment.codable)),
                    ))
                ids.append(segment_id)
            kept = len(matching.reused)
            leftovers = set(old_ids) - {old_ids[index] for index in matching.reused.values()}
            retired = self._retire(sorted(leftovers))
            self._q("DELETE FROM suggestions WHERE segment_id IN (SELECT id FROM segments WHERE transcript_id = ?)", (transcript.id,))
            codable_ids = [segment_id for segment_id, segment in zip(ids, transcript.segments) if segment.codable]
            self._insert_suggestions(zip(codable_ids, suggestions), pipeline_version, stamp)
        return ImportOutcome(len(ids), kept, retired, len(matching.ambiguous))

    @_operation
    def insert_transcripts(self, batch: Sequence[tuple[Transcript, Sequence[Sequence[Suggestion]], str, str]]) -> list[str]:
        """New transcripts (transcript, suggestions per codable segment, path, pipeline version) with their segments and
        suggestions, in one transaction. A transcript already in the database is left as it is, so merging the same
        results twice writes nothing twice. Returns the ids inserted.
        """
        if not batch:
            return []
        stamp = now()
        with self.transaction():
            ids = [transcript.id for transcript, _suggestions, _path, _version in batch]
            placeholders = ", ".join("?" * len(ids))
            present = {row[0] for row in self._q(f"SELECT id FROM transcripts WHERE id IN ({placeholders})", ids).fetchall()}
            fresh = []
            for item in batch:
                if item[0].id not in present:
                    present.add(item[0].id)  # a batch naming one transcript twice inserts it once
                    fresh.append(item)
            transcripts = [
                (t.id, path, t.format, t.content_hash, t.text, json.dumps(t.file_metadata, ensure_ascii=False, sort_keys=True),
                 json.dumps(t.metadata, ensure_ascii=False), stamp, stamp)
                for t, _suggestions, path, _version in fresh
            ]
            segments = [
                (t.id, s.position, s.speaker, s.start, s.end, s.text, int(s.codable)) for t, _suggestions, _path, _version in fresh for s in t.segments
            ]
            suggestions = [
                (t.id, segment.position, item.code, item.confidence, json.dumps([e.to_json() for e in item.evidence], ensure_ascii=False),
                 str(item.source), version, stamp, _applies(item))
                for t, per_segment, _path, version in fresh
                for segment, items in zip([s for s in t.segments if s.codable], per_segment)
                for item in items
            ]
            self.dialect.bulk_insert(self, transcripts, segments, suggestions)
        return [item[0].id for item in fresh]

    def _bulk_insert(self, transcripts: list[tuple], segments: list[tuple], suggestions: list[tuple]) -> None:
        """The portable way in for new transcripts: many rows per statement, segment ids read back by position."""
        self._many("INSERT INTO transcripts (id, path, format, content_hash, text, file_metadata, metadata, imported_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", transcripts)
        self._many('INSERT INTO segments (transcript_id, position, speaker, start, "end", text, codable) VALUES (?, ?, ?, ?, ?, ?, ?)', segments)
        ids = [row[0] for row in transcripts]
        segment_id: dict[tuple[str, int], int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for sid, tid, position in self._q(
                f"SELECT id, transcript_id, position FROM segments WHERE transcript_id IN ({', '.join('?' * len(chunk))}) AND retired_at IS NULL", chunk
            ).fetchall():
                segment_id[(tid, int(position))] = int(sid)
        self._many(_INSERT_SUGGESTION, ((segment_id[(tid, position)], *rest) for tid, position, *rest in suggestions))

    def _retire(self, leftovers: Iterable[int]) -> int:
        """Remove segments that vanished from their file: kept but hidden when they carry decisions."""
        retired = 0
        stamp = now()
        for leftover in leftovers:
            self._q("DELETE FROM suggestions WHERE segment_id = ?", (leftover,))
            if self._q("SELECT 1 FROM decisions WHERE segment_id = ? LIMIT 1", (leftover,)).fetchone():
                self._q("UPDATE segments SET retired_at = ? WHERE id = ?", (stamp, leftover))
                retired += 1
            else:
                self._q("DELETE FROM segments WHERE id = ?", (leftover,))
        return retired

    def _insert_suggestions(self, rows: Iterable[tuple[int, Sequence[Suggestion]]], pipeline_version: str, stamp: str) -> None:
        self._many(
            _INSERT_SUGGESTION,
            (
                (
                    segment_id,
                    item.code,
                    item.confidence,
                    json.dumps([evidence.to_json() for evidence in item.evidence], ensure_ascii=False),
                    str(item.source),
                    pipeline_version,
                    stamp,
                    _applies(item),
                )
                for segment_id, items in rows
                for item in items
            ),
        )

    @_operation
    def undecided_segments(self) -> list[SegmentRow]:
        """Respondent segments nobody has decided anything on yet."""
        rows = self._q(
            f"""SELECT {_SEGMENT_COLUMNS} FROM segments g WHERE codable = 1 AND retired_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.segment_id = g.id) ORDER BY transcript_id, position"""
        ).fetchall()
        return [_segment(row) for row in rows]

    @_operation
    def codable_segments(self, transcript_id: str | None = None) -> list[SegmentRow]:
        """Respondent segments (to be coded), in transcript and position order."""
        sql = f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE codable = 1 AND retired_at IS NULL"
        params: tuple[Any, ...] = ()
        if transcript_id is not None:
            sql += " AND transcript_id = ?"
            params = (transcript_id,)
        return [_segment(row) for row in self._q(sql + " ORDER BY transcript_id, position", params).fetchall()]

    def segment_numbers(self) -> dict[int, int]:
        """Each respondent segment's number (1-based) within its transcript, as shown in review and exports."""
        numbers: dict[int, int] = {}
        previous, number = None, 0
        for row in self.codable_segments():
            number = number + 1 if row.transcript_id == previous else 1
            previous = row.transcript_id
            numbers[row.id] = number
        return numbers

    @_operation
    def segments(self, transcript_id: str) -> list[SegmentRow]:
        """Every current segment of a transcript, interviewer turns included, in order."""
        rows = self._q(
            f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE transcript_id = ? AND retired_at IS NULL ORDER BY position", (transcript_id,)
        ).fetchall()
        return [_segment(row) for row in rows]

    @_operation
    def segment_transcripts(self, segment_ids: Sequence[int]) -> dict[int, str]:
        """Which transcript each of ``segment_ids`` belongs to."""
        found: dict[int, str] = {}
        unique = list(dict.fromkeys(segment_ids))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            rows = self._q(f"SELECT id, transcript_id FROM segments WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
            found.update((int(segment_id), transcript_id) for segment_id, transcript_id in rows)
        return found

    @_operation
    def attribute_values(self, attributes: Sequence[str]) -> dict[str, tuple[str | None, ...]]:
        """Each transcript's values of the given attributes (None where it has none), without keeping whole metadata."""
        values: dict[str, tuple[str | None, ...]] = {}
        for transcript_id, metadata in self._q("SELECT id, metadata FROM transcripts ORDER BY id").fetchall():
            parsed = json_object(metadata, "transcripts", transcript_id)
            values[transcript_id] = tuple(parsed.get(attribute) for attribute in attributes)
        return values

    @_operation
    def stale_transcripts(self, pipeline_version: str) -> list[str]:
        """Transcripts with any suggestion made by other rules (a '+model-N' suffix is ignored), or never suggested."""
        rows = self._q(
            """SELECT DISTINCT g.transcript_id FROM suggestions s JOIN segments g ON g.id = s.segment_id
               WHERE s.pipeline_version != ? AND substr(s.pipeline_version, 1, ?) != ?""",
            (pipeline_version, len(pipeline_version) + 1, pipeline_version + "+"),
        ).fetchall()
        stale = {row[0] for row in rows}
        if self.get_meta("pipeline_version") != pipeline_version:
            stale.update(self.transcripts())
        return sorted(stale)
