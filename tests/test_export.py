from __future__ import annotations

import csv
import os

import pytest

from qualcode.export import codings_rows, export, write_atomic
from qualcode.project import Project, code


def test_codings_reflect_each_coders_latest_decision(small_project):
    code(project_dir=small_project)
    with Project.open(small_project).store() as store:
        first, second = store.coded_segments("lead-01")
        store.add_decision(first["id"], "timescale", "rejected", coder="ann")
        store.add_decision(first["id"], "timescale", "accepted", coder="ann")
        store.add_decision(first["id"], "timescale", "rejected", coder="bob")
        store.add_decision(second["id"], "other", "added", coder="ann")
        header, rows = codings_rows(store)
        assert header[-2:] == ["role", "sector"]
        table = [(r[0], r[1], r[6], r[7], r[9]) for r in rows]
        assert table == [
            ("lead-01", 1, "timescale", "accepted", "ann"),
            ("lead-01", 1, "timescale", "rejected", "bob"),
            ("lead-01", 2, "other", "added", "ann"),
            ("lead-01", 2, "sustainability", "suggested", ""),
        ]
        assert rows[2][8] == ""  # an added code has no machine confidence
        _header, bob_rows = codings_rows(store, coder="bob")
        assert [(r[6], r[7]) for r in bob_rows] == [("timescale", "rejected"), ("sustainability", "suggested")]


def test_export_offsets_slice_the_stored_text(sample_project):
    code(project_dir=sample_project)
    result = export(project_dir=sample_project)
    with result.files[0].open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result.rows > 30
    with Project.open(sample_project).store() as store:
        for row in rows:
            assert store.transcript_text(row["transcript"])[int(row["start"]) : int(row["end"])] == row["text"]
    assert {row["role"] for row in rows} == {"lead", "partner", "stakeholder"}


def test_write_atomic_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "codings.csv"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["codings.csv"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "codings.csv"
    write_atomic(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["codings.csv"]
