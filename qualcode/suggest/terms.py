"""The lemma n-grams the learned models read: TF-IDF over the NORM (lower-cased lemma) of a segment's words and
numbers, unigrams and bigrams, sublinear term frequency, each row scaled to unit length.

``Terms.fit`` chooses the vocabulary and its IDF weights with scikit-learn's ``TfidfVectorizer`` over
``feature_text``; ``Terms.transform`` then weighs Docs without scikit-learn and without joining their words into a
text: it reads each Doc's NORM hashes as an array and looks terms up by hash, all Docs of a batch at once. It gives
what ``TfidfVectorizer.transform`` gives over ``feature_text`` (a test holds the two together) in about half the time,
and scoring segments (``qualcode code`` with models) no longer imports scikit-learn, 1.1-1.4 s per process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from spacy.strings import StringStore
    from spacy.tokens import Doc

TOKEN_PATTERN = r"\S+"
VECTORIZER_PARAMS = {"token_pattern": TOKEN_PATTERN, "lowercase": False, "ngram_range": (1, 2), "sublinear_tf": True,
                     "max_features": 50_000}
_PIECES = re.compile(TOKEN_PATTERN)
_SEEN_LIMIT = 200_000  # distinct NORMs remembered as checked; a hostile transcript of random strings must not grow it forever


def feature_text(doc: "Doc") -> str:
    """The lemmas the models read, as one text: NORM (lower-cased lemma) of words and numbers."""
    return " ".join(token.norm_ for token in doc if token.is_alpha or token.like_num)


@dataclass
class Terms:
    """A fitted vocabulary of lemma unigrams and bigrams (``vocabulary[i]`` is column i) and their IDF weights."""

    vocabulary: list[str]
    idf: Any  # float64 array, one weight per column
    min_df: int
    _tables: Any = field(default=None, init=False, repr=False, compare=False)
    _seen: set[int] = field(default_factory=set, init=False, repr=False, compare=False)  # NORMs checked for pieces
    _odd: dict[int, tuple[int, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)  # those not one piece

    @classmethod
    def fit(cls, texts: Sequence[str], *, min_df: int) -> "Terms":
        """The vocabulary (at most ``max_features`` terms, each in at least ``min_df`` texts) and IDF of ``texts``."""
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(min_df=min_df, **VECTORIZER_PARAMS).fit(texts)
        vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
        return cls(vocabulary, np.asarray(vectorizer.idf_, dtype=np.float64), min_df)

    def transform(self, docs: Sequence["Doc"]) -> Any:
        """The TF-IDF rows of ``docs`` (a CSR matrix, float64): ``TfidfVectorizer.transform`` over their
        ``feature_text``."""
        import numpy as np
        from scipy.sparse import csr_matrix
        from spacy.attrs import IS_ALPHA, LIKE_NUM, NORM

        keys, unigram_columns, bigram_keys, bigram_columns = self._lookup_tables()
        sequences = []
        for doc in docs:
            array = doc.to_array([NORM, IS_ALPHA, LIKE_NUM]).reshape(-1, 3)
            sequences.append(array[np.logical_or(array[:, 1], array[:, 2]), 0])
        hashes = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.uint64)
        if self._has_odd_pieces(hashes, docs[0].vocab.strings if docs else None):
            sequences = [np.array([piece for key in sequence.tolist() for piece in self._odd.get(key, (key,))], dtype=np.uint64)
                         if self._odd.keys() & sequence.tolist() else sequence for sequence in sequences]
            hashes = np.concatenate(sequences)
        lengths = np.fromiter((len(sequence) for sequence in sequences), dtype=np.int64, count=len(sequences))
        rows = np.repeat(np.arange(len(sequences)), lengths)
        # each word's index among the vocabulary's words, -1 for a word no term has
        position = np.minimum(np.searchsorted(keys, hashes), max(len(keys) - 1, 0))
        ids = np.where(keys[position] == hashes, position, -1) if len(keys) else np.full(len(hashes), -1)
        known = ids >= 0
        columns = unigram_columns[ids[known]]
        unigram = columns >= 0
        found_rows, found_columns = [rows[known][unigram]], [columns[unigram]]
        if len(hashes) > 1 and len(bigram_keys):
            pairs = (rows[:-1] == rows[1:]) & known[:-1] & known[1:]
            pair_keys = ids[:-1][pairs] * len(keys) + ids[1:][pairs]
            position = np.minimum(np.searchsorted(bigram_keys, pair_keys), len(bigram_keys) - 1)
            bigram = bigram_keys[position] == pair_keys
            found_rows.append(rows[:-1][pairs][bigram])
            found_columns.append(bigram_columns[position[bigram]])
        row_index, column_index = np.concatenate(found_rows), np.concatenate(found_columns)
        counts = csr_matrix((np.ones(len(row_index)), (row_index, column_index)), shape=(len(docs), len(self.vocabulary)))
        counts.sum_duplicates()
        counts.sort_indices()
        data = counts.data
        np.log(data, out=data)
        data += 1.0
        data *= self.idf[counts.indices]
        per_row = np.diff(counts.indptr)
        norms = np.sqrt(np.bincount(np.repeat(np.arange(len(docs)), per_row), weights=data * data, minlength=len(docs)))
        norms[norms == 0.0] = 1.0
        data /= np.repeat(norms, per_row)
        return counts

    def _lookup_tables(self) -> tuple[Any, Any, Any, Any]:
        """(the hashes of the vocabulary's words, sorted; each one's unigram column or -1; the bigrams as
        ``first * words + second`` over the word indices, sorted; their columns)."""
        if self._tables is None:
            import numpy as np
            from spacy.strings import get_string_id

            # a term is one or two whitespace-free words; any other (a damaged stored run's) never matches, as in scikit-learn
            split = [words if 1 <= len(words) <= 2 and all(_PIECES.fullmatch(word) for word in words) else []
                     for words in (term.split(" ") for term in self.vocabulary)]
            keys = np.unique(np.fromiter((get_string_id(word) for words in split for word in words), dtype=np.uint64))
            index = {int(key): position for position, key in enumerate(keys)}
            unigram_columns = np.full(len(keys), -1, dtype=np.int64)
            bigrams: list[tuple[int, int]] = []
            for column, words in enumerate(split):
                if not words:
                    continue
                if len(words) == 1:
                    unigram_columns[index[get_string_id(words[0])]] = column
                else:
                    bigrams.append((index[get_string_id(words[0])] * len(keys) + index[get_string_id(words[1])], column))
            bigrams.sort()
            self._tables = (keys, unigram_columns, np.array([key for key, _ in bigrams], dtype=np.int64),
                            np.array([column for _, column in bigrams], dtype=np.int64))
        return self._tables

    def _has_odd_pieces(self, hashes: Any, strings: "StringStore | None") -> bool:
        """Whether ``hashes`` hold a NORM that is not one whitespace-free piece (spaCy's "airplanes ", "New York", ""),
        which ``feature_text`` and the vectorizer's token pattern read as its pieces (``_odd`` keeps their hashes)."""
        import numpy as np
        from spacy.strings import get_string_id

        if strings is None or not len(hashes):
            return False
        unique = np.unique(hashes).tolist()
        if len(self._seen) + len(unique) > _SEEN_LIMIT:
            self._seen.clear()  # the odd ones stay: there are few, and each is read as its pieces again
        for key in unique:
            if key not in self._seen:
                self._seen.add(key)
                text = strings[key]
                pieces = _PIECES.findall(text)
                if pieces != [text]:
                    self._odd[key] = tuple(get_string_id(piece) for piece in pieces)
        return bool(self._odd) and bool(np.isin(hashes, np.fromiter(self._odd, dtype=np.uint64)).any())
