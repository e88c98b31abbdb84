"""What any process needs to suggest codes: the pipeline's recipe, as plain values.

A ``WorkerSpec`` carries the codebook's text, the settings and the learned models'
parameters: plain values that any engine can ship to a worker (a forked process, a
process pool, a Dask worker on another machine). Each worker builds its spaCy pipeline
once and keeps it, keyed by the codebook's fingerprint, and returns plain rows (the
segmented transcript and its suggestions), never spaCy objects.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from qualcode.codebook import Codebook, fingerprint, parse_codebook
from qualcode.ingest.segmenting import neighbours
from qualcode.ingest.transcripts import Transcript
from qualcode.settings import Settings
from qualcode.suggest.model import ModelSet, suggest
from qualcode.suggest.pipeline import build_pipeline
from qualcode.suggestion import Suggestion
from qualcode.vocabulary import ContextFeatures, VectorModel

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

# Pipelines built in this process, by (codebook fingerprint, pipeline name, language, vectors).
_PIPELINES: dict[tuple[str, str | None, str, str], "Language"] = {}
# Learned models read in this process, by model run id and a checksum of the parameters: run 1 of one project is not
# run 1 of another.
_MODELS: dict[tuple[int, int], ModelSet] = {}


def _pipeline_key(codebook_fingerprint: str, settings: Settings) -> tuple[str, str | None, str, str]:
    return (codebook_fingerprint, settings.pipeline, settings.language, settings.vectors.value)


def pipeline_for(codebook: Codebook, settings: Settings) -> "Language":
    """This process's pipeline for the codebook and settings, built on first use."""
    key = _pipeline_key(codebook.fingerprint, settings)
    nlp = _PIPELINES.get(key)
    if nlp is None:
        _PIPELINES.clear()  # one codebook at a time: an edited codebook replaces the old pipeline
        nlp = _PIPELINES[key] = build_pipeline(codebook, pipeline_name=settings.pipeline, language=settings.language,
                                                vectors=settings.vectors)
    return nlp


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, as plain values."""

    codebook_text: str
    codebook_path: str
    settings: Settings
    model_run: int | None = None
    model_parameters: bytes | None = field(default=None, repr=False)
    model_codes: tuple[str, ...] = ()

    @classmethod
    def build(cls, codebook: Codebook, settings: Settings, *, model_run: int | None = None, model_parameters: bytes | None = None) -> "WorkerSpec":
        return cls(codebook.text, str(codebook.path), settings, model_run, model_parameters, tuple(codebook.codes))

    def codebook(self) -> Codebook:
        return parse_codebook(self.codebook_text, path=self.codebook_path)

    def nlp(self) -> "Language":
        cached = _PIPELINES.get(_pipeline_key(fingerprint(self.codebook_text), self.settings))
        return cached if cached is not None else pipeline_for(self.codebook(), self.settings)

    @cached_property
    def _models_key(self) -> tuple[int, int]:
        # once per spec, not per file: the parameters run to megabytes
        assert self.model_run is not None and self.model_parameters is not None
        return (self.model_run, zlib.crc32(self.model_parameters))

    def models(self) -> ModelSet | None:
        if self.model_run is None or self.model_parameters is None:
            return None
        key = self._models_key
        models = _MODELS.get(key)
        if models is None:
            _MODELS.clear()
            models = _MODELS[key] = ModelSet.from_bytes(self.model_parameters, run=self.model_run).restricted_to(self.model_codes)
        return models


def codable_inputs(spec: WorkerSpec, transcript: Transcript) -> Iterator["str | Doc"]:
    """What the pipeline reads for each segment to be coded: its text, or, when the models read context, a Doc that
    carries its own vector and its neighbours' (the interviewer's question, the respondent segment before)."""
    segments = transcript.segments
    settings = spec.settings
    if settings.context == ContextFeatures.NONE or settings.vectors == VectorModel.NONE:
        yield from (segment.text for segment in segments if segment.codable)
        return
    from qualcode.suggest.vectors import CONTEXT_EXTENSION, EXTENSION, load_vectors

    nlp, table = spec.nlp(), load_vectors(settings.vectors)
    around = neighbours(segments)
    needed = {index for index, segment in enumerate(segments) if segment.codable}
    needed |= {other for index in needed for other in around[index] if other is not None}
    vectors = {index: table.doc_vector(nlp.make_doc(segments[index].text)) for index in sorted(needed)}
    for index, segment in enumerate(segments):
        if segment.codable:
            question, previous = around[index]
            doc = nlp.make_doc(segment.text)
            doc._.set(EXTENSION, vectors[index])
            doc._.set(CONTEXT_EXTENSION, (vectors.get(question) if question is not None else None,
                                          vectors.get(previous) if previous is not None else None))
            yield doc


def suggest_texts(spec: WorkerSpec, inputs: "Sequence[str | Doc]") -> list[list[Suggestion]]:
    """Suggestions for already stored segments (re-suggesting after a codebook or model change): their texts, or Docs
    made by ``vector_cache.stored_docs``."""
    return suggest(spec.nlp(), inputs, min_confidence=spec.settings.min_confidence, models=spec.models())


def warm(spec: WorkerSpec) -> Any:
    """Build the pipeline and read the models now (a process pool's initializer), so the first file is not slower."""
    spec.nlp()
    return spec.models()
