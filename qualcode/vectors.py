"""Sentence vectors: what a segment means, beyond the words it shares with others.

The shipped model is a static distillation of all-MiniLM-L6-v2 (``scripts/distil_vectors.py``
says how it was made, from which pinned wheel): one 256-number vector per WordPiece token,
int8 with a scale per token, 7 MB in ``qualcode/data/``. A segment's vector is the mean of its
tokens' vectors, normalised. No transformer runs: it costs a table lookup per word, so it can
sit in the default pipeline.

``qualcode_vectors`` (registered with ``Language.factory``) writes it to ``doc._.qc_vector``.
The table is read once per process, with NumPy's pickle-free loader.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc

from qualcode.errors import PipelineError
from qualcode.vocabulary import DEFAULT_VECTORS, VectorModel

EXTENSION = "qc_vector"
DATA = Path(__file__).resolve().parent / "data"
MAX_WORD_CHARS = 100  # BERT's own limit: longer "words" are one unknown token
_CACHE_LIMIT = 200_000  # distinct words remembered per process; a hostile transcript of random strings must not grow it forever

_FILES = {VectorModel.MINILM_STATIC: ("minilm-static.npz", "minilm-l6-static-256-v1")}


@dataclass
class StaticVectors:
    model_id: str
    table: Any  # float32, tokens x dimensions
    index: dict[str, int]
    unknown: int
    _ids: dict[int, list[int]] = field(default_factory=dict, repr=False)  # spaCy's hash of a word's text -> its WordPiece ids

    @property
    def dimensions(self) -> int:
        return int(self.table.shape[1])

    def word_ids(self, word: str) -> list[int]:
        """WordPiece ids of one word as BERT's uncased tokenizer cuts it: accents stripped, punctuation apart, longest piece first."""
        text = "".join(ch for ch in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(ch) != "Mn")
        ids: list[int] = []
        piece = ""
        for ch in text:
            if _is_punctuation(ch):
                if piece:
                    ids.extend(self._pieces(piece))
                    piece = ""
                ids.extend(self._pieces(ch))
            elif not ch.isspace() and unicodedata.category(ch)[0] != "C":
                piece += ch
        if piece:
            ids.extend(self._pieces(piece))
        return ids

    def _pieces(self, word: str) -> list[int]:
        if len(word) > MAX_WORD_CHARS:
            return [self.unknown]
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                key = word[start:end] if start == 0 else "##" + word[start:end]
                if key in self.index:
                    ids.append(self.index[key])
                    break
                end -= 1
            else:
                return [self.unknown]
            start = end
        return ids

    def vector(self, ids: Iterable[int]) -> Any:
        ids = list(ids)
        if not ids:
            return np.zeros(self.dimensions, dtype=np.float32)
        mean = self.table[ids].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return (mean / norm if norm else mean).astype(np.float32)

    def text_vector(self, text: str) -> Any:
        return self.vector(i for word in text.split() for i in self.word_ids(word))

    def doc_vector(self, doc: Doc) -> Any:
        """The vector of a Doc's words, each word cut into WordPieces once per process."""
        ids: list[int] = []
        cache = self._ids
        for token in doc:
            if token.is_space:
                continue
            pieces = cache.get(token.orth)
            if pieces is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                pieces = cache[token.orth] = self.word_ids(token.text)
            ids.extend(pieces)
        return self.vector(ids)


def _is_punctuation(ch: str) -> bool:
    code = ord(ch)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


@lru_cache(maxsize=2)
def load_vectors(model: VectorModel) -> StaticVectors:
    name, expected = _FILES[model]
    path = DATA / name
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode("utf-8"))
            table = data["table"].astype(np.float32) * data["scale"][:, None]
            vocabulary = [str(token) for token in data["vocabulary"]]
        if meta.get("model_id") != expected:
            raise ValueError(f"it holds {meta.get('model_id')!r}, not {expected!r}")
    except (OSError, KeyError, ValueError) as exc:
        raise PipelineError(
            f"the vector table {path} cannot be read ({exc})",
            path="qualcode.yaml", key_path="vectors",
            fix="reinstall qualcode, or set 'vectors: none' to code without sentence vectors",
        ) from None
    index = {token: i for i, token in enumerate(vocabulary)}
    return StaticVectors(str(meta["model_id"]), table, index, index.get("[UNK]", 0))


def doc_vectors(docs: Iterable[Doc], model: VectorModel) -> Any:
    """One row per Doc: the vector ``qualcode_vectors`` wrote, or (a pipeline built without it) the same vector computed now."""
    vectors = load_vectors(model)
    rows = []
    for doc in docs:
        value = doc._.get(EXTENSION)
        if value is None or len(value) != vectors.dimensions:
            value = vectors.doc_vector(doc)
        rows.append(value)
    return np.vstack(rows) if rows else np.zeros((0, vectors.dimensions), dtype=np.float32)


class SentenceVectors:
    """Writes each Doc's sentence vector to ``doc._.qc_vector``."""

    def __init__(self, nlp: Language, name: str, model: str) -> None:
        self.name = name
        self.vectors = load_vectors(VectorModel(model))

    def __call__(self, doc: Doc) -> Doc:
        doc._.set(EXTENSION, self.vectors.doc_vector(doc))
        return doc


if not Doc.has_extension(EXTENSION):
    Doc.set_extension(EXTENSION, default=None)


@Language.factory("qualcode_vectors", default_config={"model": DEFAULT_VECTORS.value})
def make_sentence_vectors(nlp: Language, name: str, model: str) -> SentenceVectors:
    return SentenceVectors(nlp, name, model)
