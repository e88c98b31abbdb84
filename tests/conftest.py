from __future__ import annotations

import shutil
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from qualcode.coding import code
from qualcode.project import Project
from qualcode.store import Entry, Store

REPO = Path(__file__).resolve().parent.parent


def call(service: Callable[..., Any], project_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
    """Open the project once, as the CLI does, and call one library service with it."""
    with Project.open(project_dir) as project:
        return service(project, *args, **kwargs)


@contextmanager
def open_store(project_dir: str | Path) -> Iterator[Store]:
    with Project.open(project_dir) as project:
        yield project.store

SMALL_CODEBOOK = """\
name: Test codebook
codes:
  - id: challenges
    label: Challenges
    children:
      - id: timescale
        label: Timescale
        description: Time pressure.
        keywords: [deadline, rush]
        phrases: [short timescale, not enough time]
      - id: sustainability
        label: Sustainability
        keywords: [mainstream]
        phrases: [when the funding end]
        patterns:
          - [{NORM: who}, {NORM: will}, {NORM: pay}]
  - id: other
    label: Other
    manual: true
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    """A project with a tiny codebook and two transcripts with known content."""
    write(tmp_path / "codebook.yaml", SMALL_CODEBOOK)
    write(
        tmp_path / "transcripts" / "lead-01.txt",
        """\
        ---
        role: lead
        sector: third sector
        ---
        Interviewer: How was the deadline?

        Respondent: The deadline was brutal, we had to rush everything.

        Interviewer: And afterwards?

        Respondent: Honestly I do not know who will pay when the funding ends.
        """,
    )
    write(
        tmp_path / "transcripts" / "partner-01.txt",
        """\
        Interviewer: Tell me about your organisation.

        Respondent: We are a housing association with two thousand homes.
        """,
    )
    write(tmp_path / "transcripts" / "metadata.csv", "transcript,role\npartner-01,partner\n")
    return tmp_path


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    """A copy of the repository's sample project (codebook.yaml and transcripts/)."""
    shutil.copy(REPO / "codebook.yaml", tmp_path / "codebook.yaml")
    shutil.copytree(REPO / "transcripts", tmp_path / "transcripts")
    return tmp_path


@pytest.fixture(scope="session")
def sample_nlp():
    from qualcode.codebook import load_codebook
    from qualcode.pipeline import build_pipeline

    return build_pipeline(load_codebook(REPO / "codebook.yaml"))


@pytest.fixture
def review_project(small_project):
    write(
        small_project / "transcripts" / "partner-01.txt",
        """\
        Interviewer: Tell me about your organisation.

        Respondent: We are a housing association with two thousand homes.

        Interviewer: And the bid?

        Respondent: There was a deadline, and nobody knows who will pay when the funding ends.
        """,
    )
    call(code, small_project)
    return small_project


@pytest.fixture
def decided_project(tmp_path):
    """Four respondents with hand-placed decisions (no reliance on the rules):

    lead-01  seg1 timescale accepted (ann); seg2 timescale added + sustainability added (ann)
    lead-02  seg1 sustainability accepted (ann)
    partner-01 seg1 timescale rejected (ann), accepted (bob)
    stakeholder-01 nothing
    """
    write(tmp_path / "codebook.yaml", SMALL_CODEBOOK)
    bodies = {
        "lead-01": ("lead", "third sector", ["First answer about things.", "Second answer about more things.", "Third answer."]),
        "lead-02": ("lead", "public sector", ["Only answer here.", "Another one."]),
        "partner-01": ("partner", "third sector", ["Partner speaking.", "Partner again."]),
        "stakeholder-01": ("stakeholder", "public sector", ["Stakeholder view."]),
    }
    for tid, (role, sector, answers) in bodies.items():
        turns = "\n\n".join(f"Interviewer: Question {i}?\n\nRespondent: {answer}" for i, answer in enumerate(answers, start=1))
        write(tmp_path / "transcripts" / f"{tid}.txt", f"---\nrole: {role}\nsector: {sector}\n---\n{turns}\n")
    call(code, tmp_path)
    with open_store(tmp_path) as store:
        seg = {tid: [row.id for row in store.codable_segments(tid)] for tid in bodies}
        store.record([Entry(seg["lead-01"][0], "timescale", "accepted")], coder="ann")
        store.record([Entry(seg["lead-01"][1], "timescale", "added"), Entry(seg["lead-01"][1], "sustainability", "added")], coder="ann")
        store.record([Entry(seg["lead-02"][0], "sustainability", "accepted")], coder="ann")
        store.record([Entry(seg["partner-01"][0], "timescale", "rejected")], coder="ann")
        store.record([Entry(seg["partner-01"][0], "timescale", "accepted")], coder="bob")
    return tmp_path
