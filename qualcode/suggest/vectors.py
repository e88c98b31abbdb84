"""Sentence vectors: what a segment means, beyond the words it shares with others.

The shipped model is a static distillation of all-MiniLM-L6-v2 (``scripts/distil_vectors.py``
says how it was made, from which pinned wheel): one 256-number vector per WordPiece token,
int8 with a scale per token, 7 MB in ``qualcode/data/``. A segment's vector is the mean of its
tokens' vectors, normalised. No transformer runs: it costs a table lookup per word, so it can
sit in the default pipeline.

``qualcode_vectors`` (registered with ``Language.factory``) writes it to ``doc._.qc_vector``,
unless the Doc arrives with one (read from the project's vector cache). ``doc._.qc_context``
holds the vectors of a segment's neighbours (the interviewer's question, the respondent
segment before), for projects that set ``context:``. The table is read once per process,
with NumPy's pickle-free loader.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from spacy.attrs import IS_SPACE, ORTH
from spacy.language import Language
from spacy.tokens import Doc

from qualcode.errors import PipelineError
from qualcode.vocabulary import DEFAULT_VECTORS, ContextFeatures, VectorModel

EXTENSION = "qc_vector"
CONTEXT_EXTENSION = "qc_context"  # (the question's vector or None, the previous respondent segment's vector or None)
DATA = Path(__file__).resolve().parent.parent / "data"
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
        if word.isascii():  # most words: nothing to normalise, and a plain word is one piece run
            text = word.lower()
            if text.isalnum():
                return self._pieces(text)
        else:
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
        """The normalised mean of the tokens' vectors (the sum's direction: the same vector, one division fewer)."""
        ids = ids if isinstance(ids, list) else list(ids)
        if not ids:
            return np.zeros(self.dimensions, dtype=np.float32)
        total = self.table[ids].sum(axis=0, dtype=np.float32)
        norm = float(np.sqrt(total @ total))
        return total / norm if norm else total

    def text_vector(self, text: str) -> Any:
        return self.vector(i for word in text.split() for i in self.word_ids(word))

    def doc_vector(self, doc: Doc) -> Any:
        """The vector of a Doc's words (``doc_vectors`` of it alone: the same numbers as in any batch)."""
        return self.doc_vectors([doc])[0]

    def doc_vectors(self, docs: Sequence[Doc]) -> Any:
        """One normalised row per Doc: the mean of its words' WordPiece vectors. A batch at a time, in arrays: the
        words are read as ids (no Token objects), each distinct word of the batch is cut into pieces once (and
        remembered per process), and each Doc sums its tokens' pieces in its own order, so a Doc's vector does not
        depend on the batch it came in."""
        dimensions = self.dimensions
        out = np.zeros((len(docs), dimensions), dtype=np.float32)
        arrays = [doc.to_array([ORTH, IS_SPACE]).reshape(-1, 2) for doc in docs]
        if not arrays or not sum(len(array) for array in arrays):
            return out
        rows = np.concatenate(arrays)
        keep = rows[:, 1] == 0
        orths = rows[keep, 0]
        owners = np.repeat(np.arange(len(docs)), [len(array) for array in arrays])[keep]
        if not len(orths):
            return out
        unique, inverse = np.unique(orths, return_inverse=True)
        cache, strings = self._ids, docs[0].vocab.strings
        pieces: list[list[int]] = []
        for orth in unique.tolist():
            word = cache.get(orth)
            if word is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                word = cache[orth] = self.word_ids(strings[orth])
            pieces.append(word)
        counts = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        flat = np.fromiter((piece for word in pieces for piece in word), dtype=np.int64, count=int(counts.sum()))
        # each token's pieces, in token order: the distinct words' pieces expanded through ``inverse``
        inverse = inverse.ravel()
        token_counts = counts[inverse]
        total = int(token_counts.sum())
        first = (np.cumsum(counts) - counts)[inverse]
        offsets = np.arange(total) - np.repeat(np.cumsum(token_counts) - token_counts, token_counts)
        token_pieces = flat[np.repeat(first, token_counts) + offsets]
        bounds = np.concatenate(([0], np.cumsum(np.bincount(owners, weights=token_counts, minlength=len(docs)).astype(np.int64))))
        table = self.table
        for row in range(len(docs)):  # a gather and a sum per Doc: faster than any one-call reduction over the batch
            if bounds[row + 1] > bounds[row]:
                out[row] = table[token_pieces[bounds[row] : bounds[row + 1]]].sum(axis=0)
        norms = np.sqrt(np.einsum("ij,ij->i", out, out))
        nonzero = norms > 0
        out[nonzero] /= norms[nonzero, None]
        return out


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
    docs = list(docs)
    matrix = np.zeros((len(docs), vectors.dimensions), dtype=np.float32)
    missing = []
    for row, doc in enumerate(docs):
        value = doc._.get(EXTENSION)
        if value is None or len(value) != vectors.dimensions:
            missing.append(row)
        else:
            matrix[row] = value
    for start in range(0, len(missing), 1024):  # the rest a batch at a time
        rows = missing[start : start + 1024]
        matrix[rows] = vectors.doc_vectors([docs[row] for row in rows])
    return matrix


def context_matrix(docs: Sequence[Doc], model: VectorModel, context: ContextFeatures) -> Any:
    """One row per Doc: its question's vector and/or its previous segment's vector, side by side (zeros where it has
    none, as a first answer has no previous segment)."""
    dimensions = load_vectors(model).dimensions
    wanted = [part for part, on in ((0, context.question), (1, context.previous)) if on]
    matrix = np.zeros((len(docs), dimensions * len(wanted)), dtype=np.float32)
    for row, doc in enumerate(docs):
        neighbours = doc._.get(CONTEXT_EXTENSION) or (None, None)
        for column, part in enumerate(wanted):
            value = neighbours[part]
            if value is not None and len(value) == dimensions:
                matrix[row, column * dimensions : (column + 1) * dimensions] = value
    return matrix


def text_key(text: str) -> str:
    """What the vector cache files a segment's vector under: a digest of its text (the text itself may be long)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def vector_bytes(vector: Any) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes, dimensions: int) -> Any:
    """A cached vector, or None when the bytes cannot be one (a damaged or foreign row is computed again, never trusted)."""
    if len(data) != 4 * dimensions:
        return None
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    return vector if np.isfinite(vector).all() else None


class SentenceVectors:
    """Writes each Doc's sentence vector to ``doc._.qc_vector``."""

    def __init__(self, nlp: Language, name: str, model: str) -> None:
        self.name = name
        self.model = VectorModel(model)

    @property
    def vectors(self) -> StaticVectors:
        """The table, read on first use (once per process): `suggest` leaves this component out (the learned models
        compute the vectors they read), so a run without models never needs it."""
        return load_vectors(self.model)

    def __call__(self, doc: Doc) -> Doc:
        if doc._.get(EXTENSION) is None:  # a Doc made with its cached vector keeps it
            doc._.set(EXTENSION, self.vectors.doc_vector(doc))
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        """``nlp.pipe``'s way in: a batch of Docs at once (``StaticVectors.doc_vectors``)."""
        from spacy.util import minibatch

        for batch in minibatch(stream, size=batch_size):
            todo = [doc for doc in batch if doc._.get(EXTENSION) is None]  # a Doc made with its cached vector keeps it
            for doc, vector in zip(todo, self.vectors.doc_vectors(todo)):
                doc._.set(EXTENSION, vector)
            yield from batch


for _name in (EXTENSION, CONTEXT_EXTENSION):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=None)


@Language.factory("qualcode_vectors", default_config={"model": DEFAULT_VECTORS.value})
def make_sentence_vectors(nlp: Language, name: str, model: str) -> SentenceVectors:
    return SentenceVectors(nlp, name, model)
