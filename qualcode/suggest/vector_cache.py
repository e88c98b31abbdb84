"""Stored segments as Docs ready for the pipeline: their sentence vectors read from the project's cache (computed and
filed there the first time), and, with ``context:``, their neighbours' vectors beside them.

Training, re-scoring and the active review order all go through here, so a segment's vector is computed once per
text and vector model, and a question's vector is read, not recomputed, for every answer that follows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from qualcode.ingest.segmenting import neighbours
from qualcode.settings import Settings
from qualcode.store import Store
from qualcode.vocabulary import ContextFeatures, VectorModel

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc


def cached_vectors(store: Store, nlp: "Language", model: VectorModel, texts: Sequence[str]) -> list[Any]:
    """The sentence vector of each text: from the cache where it is there and sound, else computed now and filed."""
    from qualcode.suggest.vectors import load_vectors, text_key, vector_bytes, vector_from_bytes

    table = load_vectors(model)
    keys = [text_key(text) for text in texts]
    stored = store.cached_vectors(table.model_id, keys)
    vectors: list[Any] = []
    fresh: dict[str, bytes] = {}
    for key, text in zip(keys, texts):
        raw = fresh.get(key) or stored.get(key)  # a text met twice in one call is computed once, even over an unsound row
        vector = vector_from_bytes(raw, table.dimensions) if raw is not None else None
        if vector is None:
            vector = table.doc_vector(nlp.make_doc(text))
            fresh[key] = vector_bytes(vector)
        vectors.append(vector)
    store.save_vectors(table.model_id, list(fresh.items()))
    return vectors


def stored_docs(store: Store, nlp: "Language", settings: Settings, segment_ids: Sequence[int], texts: Sequence[str]) -> list["Doc"]:
    """Tokenised Docs for stored segments (``segment_ids[i]`` holds ``texts[i]``), each with its cached vector and, when
    ``settings.context`` asks, its neighbours' vectors; ``nlp.pipe`` runs the rest of the pipeline on them."""
    from qualcode.suggest.vectors import CONTEXT_EXTENSION, EXTENSION

    docs = [nlp.make_doc(text) for text in texts]
    if settings.vectors == VectorModel.NONE or not docs:
        return docs
    for doc, vector in zip(docs, cached_vectors(store, nlp, settings.vectors, texts)):
        doc._.set(EXTENSION, vector)
    if settings.context != ContextFeatures.NONE:
        for doc, context in zip(docs, stored_contexts(store, nlp, settings, segment_ids)):
            doc._.set(CONTEXT_EXTENSION, context)
    return docs


def stored_contexts(store: Store, nlp: "Language", settings: Settings, segment_ids: Sequence[int]) -> list[tuple[Any, Any]]:
    """Per segment, (its question's vector, its previous respondent segment's vector), None where it has none."""
    wanted = set(segment_ids)
    around: dict[int, tuple[str | None, str | None]] = {}
    for transcript_id in sorted(set(store.segment_transcripts(segment_ids).values())):
        rows = store.segments(transcript_id)
        for row, (question, previous) in zip(rows, neighbours(rows)):
            if row.id in wanted:
                around[row.id] = (rows[question].text if question is not None else None,
                                  rows[previous].text if previous is not None else None)
    texts = sorted({text for pair in around.values() for text in pair if text is not None})
    vectors = dict(zip(texts, cached_vectors(store, nlp, settings.vectors, texts)))
    found = []
    for segment_id in segment_ids:
        question_text, previous_text = around.get(segment_id, (None, None))
        found.append((vectors.get(question_text) if question_text is not None else None,
                      vectors.get(previous_text) if previous_text is not None else None))
    return found


def prune(store: Store, settings: Settings) -> int:
    """Forget cached vectors no current segment needs (texts re-imported away, another vector model); how many went."""
    from qualcode.suggest.vectors import load_vectors, text_key

    if settings.vectors == VectorModel.NONE:
        return 0
    keep = {text_key(row.text) for transcript_id in store.transcripts() for row in store.segments(transcript_id)}
    return store.prune_vectors(load_vectors(settings.vectors).model_id, keep)
