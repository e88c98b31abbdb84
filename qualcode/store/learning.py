"""What the machine learned: fitted model runs (parameters as bytes, never unpickled) and the sentence-vector cache."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from qualcode.store.base import _IN_CHUNK, StoreBase, _json, _operation, now
from qualcode.store.records import ModelRun


class LearningTables(StoreBase):
    """The ``model_runs`` and ``segment_vectors`` tables."""

    @_operation
    def cached_vectors(self, model: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The cached vectors of ``model`` among ``keys`` (text digests), as stored bytes; missing keys are left out."""
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for key, vector in self._q(f"SELECT text_hash, vector FROM segment_vectors WHERE model = ? AND text_hash IN ({marks})",
                                       (model, *chunk)).fetchall():
                found[key] = bytes(vector)
        return found

    @_operation
    def save_vectors(self, model: str, rows: Sequence[tuple[str, bytes]]) -> None:
        """File vectors under their text digests (a row already there is replaced: it may have been unreadable)."""
        if self.read_only or not rows:
            return
        with self.transaction():
            self._many("INSERT INTO segment_vectors (model, text_hash, vector) VALUES (?, ?, ?) "
                       "ON CONFLICT (model, text_hash) DO UPDATE SET vector = excluded.vector",
                       ((model, key, self.dialect.binary(vector)) for key, vector in rows))

    @_operation
    def prune_vectors(self, model: str, keep: Iterable[str]) -> int:
        """Drop cached vectors of other models, and of texts not in ``keep`` (segments since re-imported); how many went."""
        if self.read_only:
            return 0
        wanted = set(keep)
        with self.transaction():
            dropped = int(self._one("SELECT COUNT(*) FROM segment_vectors WHERE model != ?", (model,)))
            self._q("DELETE FROM segment_vectors WHERE model != ?", (model,))
            stale = [key for (key,) in self._q("SELECT text_hash FROM segment_vectors WHERE model = ?", (model,)).fetchall()
                     if key not in wanted]
            for start in range(0, len(stale), _IN_CHUNK):
                chunk = stale[start : start + _IN_CHUNK]
                self._q(f"DELETE FROM segment_vectors WHERE model = ? AND text_hash IN ({', '.join('?' * len(chunk))})", (model, *chunk))
        return dropped + len(stale)

    @_operation
    def save_model_run(self, *, trained_at: str, decisions: int, summary: dict[str, Any], parameters: bytes, format: str) -> int:
        with self.transaction():
            return int(self._one(
                "INSERT INTO model_runs (trained_at, decisions, summary, parameters, format) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (trained_at, decisions, json.dumps(summary), self.dialect.binary(parameters), format),
            ))

    @_operation
    def latest_model_run(self, *, parameters: bool = False) -> ModelRun | None:
        """The most recent training run: its summary, and with ``parameters`` its fitted parameters (bytes, never unpickled)."""
        columns = "id, trained_at, decisions, summary, format" + (", parameters" if parameters else "")
        row = self._q(f"SELECT {columns} FROM model_runs ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        blob = bytes(row[5]) if parameters and row[5] is not None else None
        return ModelRun(int(row[0]), row[1], int(row[2]), _json(row[3], "model_runs", row[0]), row[4], blob)

    @_operation
    def unreadable_model_runs(self) -> list[str]:
        """Model runs whose parameters are not the archive a fit writes (checked as a zip archive, never unpickled)."""
        import io
        import zipfile

        found = []
        for run_id, blob, stored_format in self._q("SELECT id, parameters, format FROM model_runs ORDER BY id").fetchall():
            if stored_format != "npz-1" or blob is None:
                continue  # older formats are refused by name when read
            try:
                with zipfile.ZipFile(io.BytesIO(bytes(blob))) as archive:
                    damaged = archive.testzip()
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                damaged = str(exc)
            if damaged is not None:
                found.append(f"model run {run_id} cannot be read ({damaged}); 'qualcode code' suggests from the rules until "
                             "'qualcode train' fits again")
        return found

    # -- the language model's replies ---------------------------------------------------------

    @_operation
    def cached_replies(self, model: str, prompt_version: str, codebook: str, keys: Sequence[str]) -> dict[str, tuple[str, Any]]:
        """The filed replies among ``keys`` (digests of what was asked), as (status, parsed reply)."""
        found: dict[str, tuple[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            rows = self._q(f"SELECT segment_key, status, reply FROM llm_replies WHERE model = ? AND prompt_version = ? AND codebook = ? "
                           f"AND segment_key IN ({', '.join('?' * len(chunk))})", (model, prompt_version, codebook, *chunk)).fetchall()
            for key, status, reply in rows:
                found[key] = (status, _json(reply, "llm_replies", f"{model}/{key}"))
        return found

    @_operation
    def save_reply(self, model: str, prompt_version: str, codebook: str, key: str, status: str, reply: Any) -> None:
        """File one reply at once, in a transaction of its own: a run killed after it asks nothing twice."""
        with self.transaction():
            self._q("INSERT INTO llm_replies (model, prompt_version, codebook, segment_key, status, reply, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, prompt_version, codebook, segment_key) DO UPDATE SET "
                    "status = excluded.status, reply = excluded.reply, created_at = excluded.created_at",
                    (model, prompt_version, codebook, key, status, json.dumps(reply, ensure_ascii=False), now()))
