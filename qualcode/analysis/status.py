"""Review progress: how much is reviewed, per transcript and per code, by whom, and what the models learned."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from qualcode.ingest.transcripts import UNKNOWN_ROLE
from qualcode.project import Project, one_snapshot
from qualcode.vocabulary import Verdict


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
class StatusReport:
    coders: list[str]
    transcripts: list[TranscriptStatus]
    codes: list[CodeStatus]
    model_run: int | None = None
    model: dict | None = None


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
    return StatusReport(coders, transcripts, codes, run.id if run else None, run.summary if run else None)
