"""A few SIGKILLs of `qualcode code` and `qualcode review`, and code beside two reviewers.

The full run (50 kills each) is `benchmarks/crash.py`; its figures are in docs/reliability.md.
"""

from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import crash  # noqa: E402  (a broken harness must fail here, not skip)


def test_killed_code_runs_leave_no_half_imported_transcript(tmp_path):
    stats = crash.kill_code(kills=4, seed=11, workdir=tmp_path, words=25_000)
    assert stats["problems"] == [] and stats["kills"] == 4


def test_killed_reviews_lose_no_acknowledged_decision(tmp_path):
    stats = crash.kill_review(kills=4, seed=11, workdir=tmp_path, words=8_000)
    assert stats["problems"] == [] and stats["kills"] == 4
    assert stats["acknowledged"] >= 1


def test_code_beside_two_reviewing_coders(tmp_path):
    result = crash.concurrent_sessions(tmp_path, keys_per_coder=10)
    assert result["importer_exit"] == 0 and result["reviewer_exits"] == [0, 0]
    assert result["locked_errors"] == 0 and result["problems"] == []
    assert result["transcripts_imported"] == result["transcripts_total"]
    assert result["saved"] == result["acknowledged"] == {"ann": 10, "bob": 10}
