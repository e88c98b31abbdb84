"""`qualcode code --engine dask` on a real Dask LocalCluster: the same codings as the local
engine, Parquet shards merged idempotently, results made elsewhere imported, a killed worker
replaced without loss, and a clear message when the extra is missing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, call, open_store, write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.errors import ProjectError
from qualcode.project import Project
from qualcode.run.coding import code, code_to_shards, import_results
from qualcode.run.dask_engine import DaskOptions

distributed = pytest.importorskip("distributed")
sys.path.insert(0, str(REPO / "benchmarks"))
from throughput import build_corpus  # noqa: E402

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "120"})


def codings(project: Path) -> str:
    result = run("export", "--project", str(project), "--format", "csv", "--status", "all", "--output", str(project / "out"))
    assert result.exit_code == 0, result.output
    return (project / "out" / "codings.csv").read_text(encoding="utf-8")


def study(folder: Path, *, generated: int = 0) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(REPO / "codebook.yaml", folder / "codebook.yaml")
    shutil.copytree(REPO / "transcripts", folder / "transcripts")
    if generated:
        build_corpus(folder / "transcripts" / "generated", target_words=generated * 600, seed=5)
    (folder / "transcripts" / "broken.docx").write_bytes(b"not a zip")
    (folder / "transcripts" / "empty.txt").write_bytes(b"")
    return folder


def readable(project: Path) -> int:
    """The transcripts a run imports: every file but metadata.csv and the two broken ones."""
    return sum(1 for path in (project / "transcripts").rglob("*") if path.is_file()) - 3


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory) -> tuple[str, str]:
    """Codings of the sample transcripts and of ~300 generated ones by the local engine, and its skip messages."""
    project = study(tmp_path_factory.mktemp("local") / "study", generated=300)
    result = run("code", "--project", str(project))
    assert result.exit_code == 3
    return codings(project), "\n".join(sorted(line for line in result.output.splitlines() if line.startswith("Skipped")))


def test_dask_engine_gives_the_codings_and_messages_of_the_local_engine(tmp_path, local_reference):
    project = study(tmp_path / "study", generated=300)
    result = run("code", "--engine", "dask", "--workers", "2", "--project", str(project))
    assert result.exit_code == 3, result.output  # two bad files are skipped, the batch goes on
    skipped = "\n".join(sorted(line for line in result.output.splitlines() if line.startswith("Skipped")))
    assert skipped == local_reference[1]
    assert "Skipped transcripts/broken.docx: not a readable .docx" in skipped and "Skipped transcripts/empty.txt: empty file" in skipped
    assert codings(project) == local_reference[0]
    assert not (project / ".qualcode" / "shards").exists()  # merged shards are removed
    again = run("code", "--engine", "dask", "--project", str(project))
    assert f"0 imported, 0 updated, {readable(project)} unchanged" in " ".join(again.output.split())


def test_shards_written_elsewhere_merge_once_however_often_they_are_imported(tmp_path, local_reference, backend):
    project = study(tmp_path / "study", generated=300)
    output = tmp_path / "shards"
    with Project.open(project) as opened:
        written = code_to_shards(opened, str(output), engine=DaskOptions(workers=2))
    assert not (project / ".qualcode" / "project.db").exists()  # the cluster side never touches the database
    total = readable(project)
    assert total > 200 and len(written.imported) == total and len(written.skipped) == 2 and written.shards
    assert sorted(path.name for path in output.iterdir()) == sorted(Path(shard).name for shard in written.shards)
    # What a worker killed while writing leaves: once its batch's shard is written (by another worker, or a later run) it
    # is swept; one whose shard is not finished may be a live worker's, and is left.
    finished = Path(written.shards[0]).name
    leftovers = [output / f".{finished}.{'0' * 32}.tmp", output / f".shard-{'f' * 24}.parquet.{'1' * 32}.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"")
    with Project.open(project) as opened:
        rerun = code_to_shards(opened, str(output), engine=DaskOptions(workers=2))
    assert sorted(rerun.shards) == sorted(written.shards)
    assert not leftovers[0].exists() and leftovers[1].exists()
    leftovers[1].unlink()
    first = call(import_results, project, str(output))
    assert (len(first.imported), len(first.unchanged), len(first.skipped)) == (total, 0, 2)
    with open_store(project) as store:
        counts = store.counts()
    second = call(import_results, project, str(output))
    assert (len(second.imported), len(second.unchanged)) == (0, total)
    with open_store(project) as store:
        assert store.counts() == counts
    assert codings(project) == local_reference[0]
    cli = run("import-results", str(output), "--project", str(project))
    assert cli.exit_code == 3 and f"0 imported, 0 updated, {total} unchanged, 2 skipped" in " ".join(cli.output.split())
    again = " ".join(run("code", "--engine", "dask", "--workers", "1", "--output", f"parquet:{tmp_path / 'more'}", "--project", str(project)).output.split())
    assert f"{total} coded into shards, 2 skipped; the project database is unchanged" in again and "respondent segments in the project" not in again


def test_shards_left_by_a_crashed_run_are_merged_not_recomputed(tmp_path, local_reference):
    project = study(tmp_path / "study", generated=300)
    with Project.open(project) as opened:
        code_to_shards(opened, str(project / ".qualcode" / "shards"), engine=DaskOptions(workers=2))
    with Project.open(project) as opened:
        result = code(opened, engine=DaskOptions(workers=1, files_per_batch=1))
    assert len(result.imported) == readable(project) and not (project / ".qualcode" / "shards").exists()
    assert codings(project) == local_reference[0]


def test_a_killed_worker_is_replaced_and_the_results_are_complete_and_identical(tmp_path, local_reference):
    project = study(tmp_path / "study", generated=300)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40, host="127.0.0.1")
    client = distributed.Client(cluster)
    outcome: dict[str, object] = {}
    progress: list[int] = []

    def coding() -> None:
        try:
            with Project.open(project) as opened:
                outcome["result"] = code(opened, engine=DaskOptions(scheduler=cluster.scheduler_address, files_per_batch=4),
                                         on_progress=lambda stage, done, total: progress.append(done))
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=coding)
    thread.start()
    deadline = time.monotonic() + 120
    while not any(done > 0 for done in progress) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = next(iter(client.run(os.getpid).values()))
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=300)
    client.close()
    cluster.close()
    assert "error" not in outcome, outcome.get("error")
    assert max(progress) == readable(project) + 2
    assert codings(project) == local_reference[0]


def test_without_the_extra_the_message_names_it(tmp_path, monkeypatch):
    project = study(tmp_path / "study")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask's distributed were not installed
    result = run("code", "--engine", "dask", "--project", str(project))
    assert result.exit_code == 1
    assert "'distributed' is not installed: the Dask engine and Parquet shards need qualcode's dask extra. Fix: pip install 'qualcode[dask]'" in " ".join(result.output.split())
    with pytest.raises(ProjectError, match="qualcode\\[dask\\]"), Project.open(project) as opened:
        code_to_shards(opened, str(tmp_path / "out"), engine=DaskOptions())


def test_engine_options_are_checked(tmp_path):
    write(tmp_path / "codebook.yaml", "codes:\n  - id: a\n    keywords: [x]\n")
    assert "use one of: local, dask" in run("code", "--engine", "spark", "--project", str(tmp_path)).output
    assert "go with --engine dask" in " ".join(run("code", "--output", "parquet:x", "--project", str(tmp_path)).output.split())
    assert "write it as parquet:DIR" in " ".join(run("code", "--engine", "dask", "--output", "x", "--project", str(tmp_path)).output.split())
    missing = run("import-results", str(tmp_path / "nowhere"), "--project", str(tmp_path))
    assert missing.exit_code == 1 and "no such folder of shards" in missing.output


def test_the_only_worker_killed_again_and_again_loses_nothing(tmp_path, local_reference):
    """Issue 26: with one worker, killed (its nanny starts another), the run ended in 'lost scattered data' and a partial
    import; the spec now travels with each task, so a new worker has all it needs."""
    project = study(tmp_path / "study", generated=300)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40, host="127.0.0.1")
    client = distributed.Client(cluster)
    outcome: dict[str, object] = {}
    progress: list[int] = []

    def coding() -> None:
        try:
            with Project.open(project) as opened:
                outcome["result"] = code(opened, engine=DaskOptions(scheduler=cluster.scheduler_address, files_per_batch=4),
                                         on_progress=lambda stage, done, total: progress.append(done))
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=coding)
    thread.start()
    for kill in range(2):  # the worker, then its replacement
        deadline = time.monotonic() + 120
        while len(progress) < 3 + 10 * kill and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        try:
            client.wait_for_workers(1, timeout=60)
            victim = next(iter(client.run(os.getpid).values()))
            os.kill(victim, signal.SIGKILL)
        except (StopIteration, OSError, TimeoutError):
            pass
    thread.join(timeout=300)
    client.close()
    cluster.close()
    assert "error" not in outcome, outcome.get("error")
    assert codings(project) == local_reference[0]
    assert not (project / ".qualcode" / "shards").exists()  # rows came back to this process: the workers wrote nothing here


def test_a_scheduler_without_workers_or_a_wrong_address_is_said_plainly(tmp_path, monkeypatch):
    from qualcode.run import dask_engine

    project = study(tmp_path / "study")
    bad = run("code", "--engine", "dask", "--scheduler", "not a url", "--project", str(project))
    assert bad.exit_code == 1 and "'not a url' is not a Dask scheduler's address" in " ".join(bad.output.split()), bad.output
    monkeypatch.setattr(dask_engine, "WAIT_FOR_WORKERS", 2.0)
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT", 3.0)
    cluster = distributed.LocalCluster(n_workers=0, dashboard_address=None, silence_logs=40, host="127.0.0.1")
    try:
        empty = run("code", "--engine", "dask", "--scheduler", cluster.scheduler_address, "--project", str(project))
    finally:
        cluster.close()
    out = " ".join(empty.output.split())
    assert empty.exit_code == 1 and "has no workers (none joined within 2 s)" in out and "dask worker" in out and "Traceback" not in out, out
    unreachable = run("code", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9", "--project", str(project))
    assert unreachable.exit_code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in " ".join(unreachable.output.split())


def test_a_taken_port_8787_is_nobody_s_concern_without_dashboard_and_said_with_it(tmp_path):
    """Issue 26, item 9: 'Port 8787 is already in use' reached the terminal of a run that asked for no dashboard (the
    scheduler's own web server took Dask's default port); with --dashboard, where it is served is said."""
    import socket

    project = study(tmp_path / "study")
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", 8787))
            holder.listen()
        except OSError:
            pass  # something on this machine has it already: taken all the same
        def command(*extra: str) -> subprocess.CompletedProcess:  # a process of its own: Python's warnings reach its stderr
            return subprocess.run([sys.executable, "-m", "qualcode", "code", "--engine", "dask", "--workers", "1", *extra, "--project",
                                   str(project)], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})

        plain = command()
        assert plain.returncode == 3 and "8787" not in plain.stderr + plain.stdout, plain.stderr
        (project / "transcripts" / "late.txt").write_text("Q: And?\nA: We ran out of time.\n", encoding="utf-8")
        asked = command("--dashboard")
        assert asked.returncode == 3 and "already in use" not in asked.stderr, asked.stderr
        link = [line for line in asked.stderr.splitlines() if line.startswith("Dask's dashboard: http://127.0.0.1:")]
        assert link and ":8787/" not in link[0], asked.stderr
    finally:
        holder.close()
