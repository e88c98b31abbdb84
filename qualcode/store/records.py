"""What the store hands out and takes in: small dataclasses, never database rows."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qualcode.leftovers import process_gone
from qualcode.suggestion import Suggestion
from qualcode.vocabulary import Mark, Verdict


@dataclass
class StoredTranscript:
    id: str
    path: str
    format: str
    content_hash: str
    file_metadata: dict[str, str]
    metadata: dict[str, str]


@dataclass(frozen=True)
class SegmentRow:
    id: int
    transcript_id: str
    position: int
    speaker: str | None
    start: int
    end: int
    text: str
    codable: bool


@dataclass
class StoredSuggestion:
    """A suggestion as stored for one segment."""

    segment_id: int
    transcript_id: str
    suggestion: Suggestion
    pipeline_version: str = ""

    @property
    def code(self) -> str:
        return self.suggestion.code

    @property
    def confidence(self) -> float:
        return self.suggestion.confidence

    @property
    def source(self) -> str:
        return self.suggestion.source


@dataclass(frozen=True)
class DecisionRow:
    id: int
    segment_id: int
    code: str | None
    verdict: str  # a Verdict, or a Mark for rows about the whole segment
    coder: str
    method: str
    note: str | None
    undoes: int | None
    batch: int
    created_at: str


@dataclass
class Entry:
    """One decision to append: a verdict on a code, or a segment-level mark (code None)."""

    segment_id: int
    code: str | None
    verdict: Verdict | Mark | str
    note: str | None = None
    undoes: int | None = None


@dataclass
class SegmentState:
    """What one coder has decided on one segment, undone rows left out."""

    codes: dict[str, str] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reviewed: bool = False


@dataclass
class ImportOutcome:
    segments: int
    kept_segments: int
    retired_with_decisions: int
    ambiguous: int = 0  # new segments matching several old ones with different decisions: left undecided


@dataclass
class ModelRun:
    id: int
    trained_at: str
    decisions: int
    summary: dict[str, Any]
    format: str
    parameters: bytes | None = None

    @property
    def readable(self) -> bool:
        """Parameters in a format qualcode reads itself (old pickled runs were dropped unread)."""
        return self.format.startswith("npz")


@dataclass(frozen=True)
class Note:
    """A memo written in review: by whom, on which segment, when."""

    id: int
    segment_id: int
    coder: str
    text: str
    created_at: str


def _boot_id() -> str:
    """This machine's boot (Linux: the kernel's random boot id; elsewhere empty): with the host name, it tells a holder
    on this very machine and boot, whose process can be asked whether it still runs, from one elsewhere."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()[:64]
    except OSError:
        return ""


BOOT_ID = _boot_id()


def holder_record(holder: str) -> str:
    """Who holds a lock or lease, as stored: the name, the machine (and its boot), the process and since when (JSON)."""
    return json.dumps({"holder": holder, "host": socket.gethostname(), "boot": BOOT_ID, "pid": os.getpid(),
                       "since": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def holder_gone(raw: str | None) -> bool:
    """Whether a stored holder was a process of this machine, in this boot, that no longer runs (killed, crashed): its
    lease can be taken over at once instead of waiting for it to expire. False whenever that cannot be known (another
    machine, an older record without the boot, a process that runs, or one this user may not signal)."""
    try:
        data = json.loads(raw or "")
        host, boot, pid = data["host"], data["boot"], int(data["pid"])
    except (ValueError, KeyError, TypeError):
        return False
    return bool(BOOT_ID) and boot == BOOT_ID and host == socket.gethostname() and process_gone(pid)


def holder_text(raw: str | None) -> str:
    """A stored holder as a message names it: 'ann on lab-3, process 4242, since 2026-12-02T10:00:00+00:00'."""
    try:
        data = json.loads(raw or "")
        return f"{data['holder']} on {data['host']}, process {data['pid']}, since {data['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
