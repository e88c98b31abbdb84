"""`qualcode review` in a real pseudo-terminal: single keys without Enter, then the store."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import open_store

pexpect = pytest.importorskip("pexpect")


def terminal_env(**values: str) -> dict[str, str]:
    """A bare terminal's environment, keeping where the database is (QUALCODE_DATABASE_URL and libpq's PG* variables)."""
    kept = {key: value for key, value in os.environ.items() if key == "QUALCODE_DATABASE_URL" or key.startswith("PG")}
    return {"PATH": "/usr/bin:/bin", **kept, **values}


def spawn_review(project, coder: str, **env: str):
    """`qualcode review` in a real 80x24 pseudo-terminal."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "qualcode", "review", "--project", str(project), "--coder", coder],
        env=terminal_env(TERM="xterm", **env),
        encoding="utf-8",
        timeout=30,
        dimensions=(24, 80),
    )


def test_review_in_a_pseudo_terminal(review_project):
    child = spawn_review(review_project, "tty-ann", COLUMNS="80", LINES="24")
    child.expect("segment 1/2 of lead-01")
    child.expect("q:quit")
    child.send("a")  # one key, no Enter
    child.expect("segment 2/2 of lead-01")
    child.expect("q:quit")
    child.send("2")  # nothing numbered 2 here
    child.expect("No code 2 here")
    child.send("x")
    child.expect("segment 2/2 of partner-01")
    child.expect("q:quit")
    child.send("n")
    child.expect("Note")
    child.sendline("said with a laugh")
    child.expect("note: said with a laugh")
    child.send("q")
    child.expect("Review quit: 3 decisions this session as tty-ann")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with open_store(review_project) as store:
        got = [(r.code, r.verdict, r.note) for r in store.decisions("tty-ann")]
    assert got == [
        ("timescale", "accepted", None),
        (None, "reviewed", None),
        ("sustainability", "rejected", None),
        (None, "reviewed", None),
        (None, "note", "said with a laugh"),
    ]


def test_killed_review_keeps_acknowledged_decisions(review_project):
    child = spawn_review(review_project, "kim")
    child.expect("segment 1/2 of lead-01")
    child.send("a")
    child.expect("segment 2/2 of lead-01")  # the screen after the key: the decision was acknowledged
    child.kill(9)
    child.close()
    with open_store(review_project) as store:
        assert store.problems() == []
        assert [r.verdict for r in store.decisions("kim")] == ["accepted", "reviewed"]


def test_keys_typed_while_review_opens_are_kept_and_a_resize_redraws_at_once(review_project):
    child = spawn_review(review_project, "tty-bob", COLUMNS="80", LINES="24")
    child.send("a")  # typed before the first screen is drawn
    child.expect("Previous segment \\(lead-01 1/2\\): Accepted 1 code")
    child.expect("q:quit")
    child.setwinsize(30, 100)  # SIGWINCH: the screen is drawn again without waiting for a key
    child.expect("segment 2/2 of lead-01")
    child.expect("q:quit")
    child.send("c")
    child.expect("Enter or Esc cancels")
    child.send("\x1b")  # Escape cancels the prompt at once
    child.expect("No code added")
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with open_store(review_project) as store:
        assert [(r.code, r.verdict) for r in store.decisions("tty-bob")] == [("timescale", "accepted"), (None, "reviewed")]
