"""A new study's starting point: the files `qualcode init` writes, each commented so that a
researcher can adapt them without reading the source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qualcode.errors import ProjectError
from qualcode.ingest.transcripts import METADATA_FILE
from qualcode.project import CODEBOOK_FILE
from qualcode.settings import SETTINGS_FILE

CODEBOOK = """\
# The codebook: the codes to apply, what each means, and what signals it.
# Check it with: qualcode codebook --check     See it as a tree: qualcode codebook --terms
name: My study
description: What the codes are for, in a sentence or two.
codes:
  - id: barriers               # a slug: lower-case letters, digits, - and _
    label: Barriers
    description: Anything that made the work harder.
    children:                  # a parent counts a respondent once, however many children apply
      - id: time-pressure
        label: Time pressure
        description: Deadlines, rushing, not enough time.
        include: Complaints about the time available or the pace of the work.
        exclude: Dates mentioned only to place events in time.
        keywords: [deadline, rush, hurry]           # single words, matched on their lemma (deadline finds Deadlines)
        phrases: [not enough time, short notice]     # several words, matched the same way; they weigh more
        examples: ["We had two weeks to pull the whole thing together."]
      - id: funding
        label: Funding
        description: Money, its amount and timing, and who pays.
        keywords: [budget, funding, grant, cost]
        phrases: [run out of money]
        # exact: [funds]             # words matched as written (any case), not by lemma
        # patterns:                  # spaCy Matcher token patterns; NORM is the lower-cased lemma
        #   - [{NORM: who}, {NORM: will}, {NORM: pay}]
  - id: support
    label: Support
    description: Help that made the work easier.
    keywords: [support, help, mentor]
  - id: other
    label: Other notable
    manual: true                   # applied by hand in review only: needs no keywords
"""

SETTINGS = """\
# Settings for this study; every line is optional (qualcode's defaults are shown).
# Shared with everyone who works on the study, so never put a password here.

# Labels that mark the interviewer's turns, kept as context and not coded (a header label such as 'Date' too).
interviewer_labels: [Interviewer, I, Q, Moderator]

# Labels of respondents; 'qualcode code' and 'check' list any other label they meet, so add names here.
respondent_labels: [Respondent, R, A, Interviewee, Participant]

# Respondent turns longer than this many words are split at paragraphs, then sentences.
segment_words: 120

# The order of groups in tables, per attribute; other values follow alphabetically, 'unknown' last.
# groups:
#   role: [lead, partner, stakeholder]

# Your name on the decisions you make in review (else your user name); or pass --coder.
# coder: ann

# A shared database for a team (see the README), e.g.
# database: postgresql://db.example.org/my-study

# transcripts: transcripts     # where the interview files are
# exports: exports             # where exports are written
# min_confidence: 0.0          # suggestions below this are not kept
# retrain_after: 50            # new decisions before code and review refit the models; 0 = never
# max_transcript_mb: 20        # larger files are skipped with a message
# paper: a4                    # what themes.xlsx prints on: a4 or letter (default: your locale's)
"""

METADATA = "transcript,role\n"

NEXT_STEPS = [
    "Put the interview files in transcripts/ (txt, md, docx, vtt or srt; one file per interview, speakers as 'Name:' at the start of a line).",
    "List each interview in transcripts/metadata.csv: its file name without the extension, then its role (any values: lead, partner, ...).",
    "Write your codes in codebook.yaml, then check it: qualcode codebook --check",
    "Code the interviews: qualcode code",
    "Review the suggestions: qualcode review --coder YOUR-NAME",
    "Export the themes: qualcode export (exports/themes.xlsx, CSV tables, quotes.md, REFI-QDA)",
]


@dataclass
class Started:
    folder: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=lambda: list(NEXT_STEPS))


def init(folder: str | Path) -> Started:
    """Write a starter project into ``folder`` (created if needed); a file already there is kept, never overwritten."""
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ProjectError("not a folder", path=root, fix="give a new folder's name, e.g. qualcode init my-study")
    if (root / CODEBOOK_FILE).exists():
        raise ProjectError("already a qualcode project (it has a codebook.yaml)", path=root,
                           fix="run 'qualcode code' there, or give a new folder's name")
    started = Started(root)
    files = {
        root / CODEBOOK_FILE: CODEBOOK,
        root / SETTINGS_FILE: SETTINGS,
        root / "transcripts" / METADATA_FILE: METADATA,
    }
    try:
        (root / "transcripts").mkdir(parents=True, exist_ok=True)
        (root / "exports").mkdir(exist_ok=True)
        for path, text in files.items():
            if path.exists():
                started.kept.append(path)
                continue
            path.write_text(text, encoding="utf-8")
            started.written.append(path)
    except OSError as exc:
        raise ProjectError(f"cannot write the starter project ({exc.strerror})", path=root,
                           fix="choose a folder you may write to") from None
    return started
