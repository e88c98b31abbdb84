from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from qualcode.project import Project
from qualcode.run.coding import code
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


# -- PostgreSQL: a real server, found through libpq's environment (PGHOST, PGPORT, PGUSER, ...) ----------

REQUIRE_POSTGRES = os.environ.get("QUALCODE_REQUIRE_POSTGRES") == "1"
HOW_TO_RUN_POSTGRES = "run 'make test-postgres' (Debian's postgresql, started by pg_virtualenv), or set PGHOST/PGPORT/PGUSER for a server of yours"
_skipped_postgres: list[str] = []


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A PostgreSQL server to create test databases on: its maintenance database's conninfo (libpq fills in the rest)."""
    reason = None
    try:
        import psycopg

        with psycopg.connect("", dbname=os.environ.get("PGDATABASE", "postgres"), connect_timeout=3, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except ImportError:
        reason = "psycopg is not installed"
    except Exception as exc:  # no server: say why in one line
        reason = f"no PostgreSQL server ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
    if reason is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"QUALCODE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(f"{reason}; {HOW_TO_RUN_POSTGRES}")
    return os.environ.get("PGDATABASE", "postgres")


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import psycopg

    name = f"qualcode_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("", dbname=postgres_server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql:///{name}"
    finally:
        with psycopg.connect("", dbname=postgres_server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server_control(postgres_server: str) -> list[str]:
    """The pg_ctlcluster command (Debian's postgresql-common) for the cluster the tests use, to stop, start or restart
    it. Without one the test is skipped, and fails under QUALCODE_REQUIRE_POSTGRES=1 (issue 26: it must run in CI)."""
    import subprocess

    if shutil.which("pg_lsclusters") is not None and shutil.which("pg_ctlcluster") is not None:
        port = os.environ.get("PGPORT", "5432")
        listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[2] == port and fields[3] == "online":
                return ["pg_ctlcluster", fields[0], fields[1]]
    message = "no pg_ctlcluster-managed cluster on PGPORT to restart (pg_lsclusters did not list it online)"
    if REQUIRE_POSTGRES:
        pytest.fail(f"QUALCODE_REQUIRE_POSTGRES=1 but {message}")
    pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, monkeypatch) -> str:
    """Which database the project fixtures use: the same tests run on both. On PostgreSQL, every project
    opened in the test (and every qualcode process it starts) uses a fresh database through QUALCODE_DATABASE_URL."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("QUALCODE_DATABASE_URL", url)
    return request.param


def pytest_collection_modifyitems(config, items):
    """Tests marked sqlite_only (they look inside the SQLite file) do not run on PostgreSQL; tests marked postgres_only
    (they restart the server) do not run on SQLite."""
    kept, dropped = [], []
    for item in items:
        backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend")
        unwanted = (backend == "postgresql" and item.get_closest_marker("sqlite_only")) or (
            backend == "sqlite" and item.get_closest_marker("postgres_only"))
        (dropped if unwanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_runtest_logreport(report):
    if report.skipped and report.when == "setup" and "PostgreSQL" in str(report.longrepr):
        _skipped_postgres.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _skipped_postgres:
        terminalreporter.write_line(
            f"{len(_skipped_postgres)} PostgreSQL tests were skipped: no server was found. To run them, {HOW_TO_RUN_POSTGRES}.",
            yellow=True,
        )

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


def old_database(path: Path, version: int) -> Any:
    """An SQLite database at an older schema ``version``, as an older qualcode left it: an open connection, to add rows."""
    import sqlite3

    from qualcode.store.schema import statements

    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.executescript(";".join(statements(0, version, "sqlite")))
    connection.execute(f"PRAGMA user_version = {version}")
    connection.commit()
    return connection


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def small_project(tmp_path: Path, backend: str) -> Path:
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
    from qualcode.suggest.pipeline import build_pipeline

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
def decided_project(tmp_path, backend):
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
