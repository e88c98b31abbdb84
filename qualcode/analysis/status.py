"""Review progress: how much is reviewed, per transcript and per code, by whom, and what the models learned."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from qualcode.ingest.transcripts import UNKNOWN_ROLE
from qualcode.project import Project, one_snapshot
from qualcode.vocabulary import Speaker, Verdict


@dataclass
class CoderProgress:
    reviewed: int = 0
    accepted: int = 0
    rejected: int = 0
    added: int = 0

    def count(self, verdict: str) -> None:
        name = Verdict(verdict).value
        setattr(self, name, getattr(self, name) + 1)


@dataclass
class TranscriptStatus:
    transcript: str
    role: str
    segments: int
    suggested: int
    coders: dict[str, CoderProgress] = field(default_factory=dict)


@dataclass
class CodeStatus:
    code: str
    depth: int
    suggested: int
    coders: dict[str, CoderProgress] = field(default_factory=dict)


@dataclass
class ModelRow:
    """One code of a model run, as `train` and `status` show it. Kappas are honest cross-validated estimates on the
    reviewed segments; ``level`` and ``more`` read the learning curve within the project's own size only."""

    code: str
    positives: int
    negatives: int
    speaker: Speaker
    model_kappa: float | None = None
    rules_kappa: float | None = None
    margin: float | None = None
    learning: bool = False  # the model is below the floor (KAPPA_FLOOR): it does not speak whatever the rules do
    level: float | None = None  # the kappa it levels off near in this project (a model that speaks)
    more: int | None = None  # reviewed segments to come within 0.05 of ``level``; 0: more review adds little
    needed: int | None = None  # for a code that does not have a speaking model: about how many more examples it needs
    too_few: bool = False  # fewer examples of a class than learn_min_examples: no model was fitted


def model_rows(summary: dict[str, Any], rule_codes: Iterable[str]) -> list[ModelRow]:
    """The codes of a model run's summary (its JSON, as stored), in the order: models, held back, too few examples.
    ``rule_codes``: the codes that have rules (the others are applied by coders alone until their model speaks)."""
    with_rules = set(rule_codes)
    rows = []
    for code, info in summary.get("codes", {}).items():
        rows.append(ModelRow(code, int(info["positives"]), int(info["negatives"]), Speaker.MODEL, info.get("cv_kappa"), info.get("rules_kappa"),
                             info.get("margin"), level=info.get("plateau_kappa"), more=info.get("more_decisions")))
    held = dict(summary.get("held_back", {}))
    for code, info in summary.get("rules_better", {}).items():  # runs of older versions
        held.setdefault(code, {"positives": 0, "negatives": 0, "rules_kappa": info["rules_kappa"], "model_cv_kappa": info["model_cv_kappa"]})
    for code, info in held.items():
        without = Speaker.RULES if code in with_rules else Speaker.NOTHING
        rows.append(ModelRow(code, int(info["positives"]), int(info["negatives"]), without, info.get("model_cv_kappa"), info.get("rules_kappa"),
                             info.get("margin"), learning=bool(info.get("learning")), needed=info.get("needed")))
    for code, info in summary.get("too_few_examples", {}).items():
        without = Speaker.RULES if code in with_rules else Speaker.NOTHING
        rows.append(ModelRow(code, int(info["positives"]), int(info["negatives"]), without, needed=info.get("needed"), too_few=True))
    return rows


@dataclass
class StatusReport:
    coders: list[str]
    transcripts: list[TranscriptStatus]
    codes: list[CodeStatus]
    model_run: int | None = None
    model: dict | None = None
    models: list[ModelRow] = field(default_factory=list)


@one_snapshot
def review_status(project: Project) -> StatusReport:
    """How much is reviewed, per transcript and per code, and by whom."""
    store, codebook = project.store, project.codebook
    coders = store.coders()
    states = {coder: store.coder_states(coder) for coder in coders}
    suggested_segments: dict[str, set[int]] = defaultdict(set)
    suggested_by_transcript: dict[str, set[int]] = defaultdict(set)
    for suggested in store.suggestions(evidence=False):
        if not suggested.suggestion.says_yes:  # shown in review, but the machine does not say the code applies
            continue
        suggested_segments[suggested.code].add(suggested.segment_id)
        suggested_by_transcript[suggested.transcript_id].add(suggested.segment_id)
    transcripts: list[TranscriptStatus] = []
    for transcript_id, stored in store.transcripts().items():
        segment_ids = [row.id for row in store.codable_segments(transcript_id)]
        row = TranscriptStatus(transcript_id, stored.metadata.get("role") or UNKNOWN_ROLE, len(segment_ids), len(suggested_by_transcript[transcript_id]))
        for coder in coders:
            progress = CoderProgress()
            for segment_id in segment_ids:
                state = states[coder].get(segment_id)
                if state is None:
                    continue
                progress.reviewed += state.reviewed
                for verdict in state.codes.values():
                    progress.count(verdict)
            row.coders[coder] = progress
        transcripts.append(row)
    codes: list[CodeStatus] = []
    for code, depth in codebook.walk():
        # A parent counts the segments suggested any of its codes, once each, as `qualcode code` reports it.
        reach = set().union(*(suggested_segments[member] for member in (code.id, *codebook.descendants(code.id))))
        code_row = CodeStatus(code.id, depth, len(reach))
        for coder in coders:
            progress = CoderProgress()
            for state in states[coder].values():
                standing = state.codes.get(code.id)
                if standing:
                    progress.count(standing)
            code_row.coders[coder] = progress
        codes.append(code_row)
    run = store.latest_model_run()
    rows = model_rows(run.summary, [code.id for code in codebook.suggestible()]) if run else []
    return StatusReport(coders, transcripts, codes, run.id if run else None, run.summary if run else None, rows)
