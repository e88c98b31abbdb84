"""Batch auto-coding at scale: the local engine against `--engine dask` on a LocalCluster.

Generates a corpus of short interviews (turns drawn from the sample transcripts), then runs
`qualcode code` as a user would, each run in a fresh project:

1. the local engine (a process pool over both cores);
2. `--engine dask` with a LocalCluster of 1 worker, then of 2 workers;
3. `--engine dask --output parquet:DIR` (no database), then `qualcode import-results DIR`
   into SQLite: the merge rate in rows per second;
4. the cluster's fixed start-up cost (start and stop, no work);
5. the client process's peak memory on the whole corpus and on a quarter of it.

Words/s is over wall time; CPU-seconds count every process of the run (the client, its pool
or the cluster's workers). The extrapolation to 10^6 transcripts on 32 workers is printed
with its arithmetic.

Run: .venv/bin/python benchmarks/scale.py [--transcripts 20000] [--words 300]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qualcode.ingest.transcripts import discover, read_transcript  # noqa: E402
from qualcode.run.dask_engine import DaskOptions, client_for  # noqa: E402

ROLES = ("lead", "partner", "stakeholder")


def build(folder: Path, transcripts: int, words: int, seed: int = 13) -> int:
    """``transcripts`` interviews of about ``words`` respondent words each; returns the words written."""
    rng = random.Random(seed)
    files, _skipped = discover([REPO / "transcripts"])
    turns = []
    for path in files:
        for block in re.split(r"\n\s*\n", read_transcript(path).text.strip()):
            if ":" in block[:30]:
                turns.append(block)
    questions = [turn for turn in turns if turn.split(":")[0].strip() in ("Interviewer", "I", "Q")]
    answers = [turn for turn in turns if turn not in questions]
    folder.mkdir(parents=True)
    total = 0
    for index in range(transcripts):
        body, count = [], 0
        while count < words:
            answer = rng.choice(answers)
            body += [rng.choice(questions), answer]
            count += len(answer.split())
        role = ROLES[index % 3]
        (folder / f"{role}-{index:06d}.txt").write_text(f"---\nrole: {role}\n---\n" + "\n\n".join(body) + "\n", encoding="utf-8")
        total += count
    return total


def project(workdir: Path, name: str, corpus: Path) -> Path:
    folder = workdir / name
    folder.mkdir()
    shutil.copy(REPO / "codebook.yaml", folder / "codebook.yaml")
    (folder / "qualcode.yaml").write_text("retrain_after: 0\n")
    os.symlink(corpus, folder / "transcripts")
    return folder


def measured(args: list[str]) -> dict:
    """Run `qualcode ARGS` as a user would; wall time, CPU-seconds of it and its workers, and the client's peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "qualcode", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]

    def watch() -> None:
        while process.poll() is None:
            try:
                for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak[0] = max(peak[0], int(line.split()[1]) // 1024)
            except OSError:
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _out, err = process.communicate()
    seconds = time.perf_counter() - started
    watcher.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode not in (0, 3):
        raise SystemExit(f"qualcode {' '.join(args)} failed:\n{err.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu": cpu, "client_peak_mb": peak[0]}


def database_rows(folder: Path) -> int:
    from qualcode.store import Store

    with Store(folder / ".qualcode" / "project.db") as store:
        counts = store.counts()
    return counts["transcripts"] + counts["segments"] + counts["suggestions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, default=20_000)
    parser.add_argument("--words", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qualcode-scale-"))
    try:
        corpus = workdir / "corpus"
        words = build(corpus, args.transcripts, args.words)
        quarter = workdir / "quarter"
        quarter.mkdir()
        for path in sorted(corpus.iterdir())[: args.transcripts // 4]:
            os.symlink(path, quarter / path.name)
        print(f"Corpus: {args.transcripts:,} transcripts, {words:,} respondent words ({words / args.transcripts:.0f} per transcript)")

        started = time.perf_counter()
        with client_for(DaskOptions(workers=2)):
            pass
        startup = time.perf_counter() - started

        runs = {}
        runs["local engine (2 processes)"] = measured(["code", "--project", str(project(workdir, "local", corpus))])
        runs["dask, 1 worker"] = measured(["code", "--engine", "dask", "--workers", "1", "--project", str(project(workdir, "dask1", corpus))])
        dask2 = project(workdir, "dask2", corpus)
        runs["dask, 2 workers"] = measured(["code", "--engine", "dask", "--workers", "2", "--project", str(dask2)])
        shards_project = project(workdir, "shards", corpus)
        runs["dask, 2 workers, shards only"] = measured(["code", "--engine", "dask", "--workers", "2", "--project", str(shards_project),
                                                         "--output", f"parquet:{workdir / 'shards'}"])
        merge = measured(["import-results", str(workdir / "shards"), "--project", str(shards_project)])
        rows = database_rows(shards_project)
        small = measured(["code", "--engine", "dask", "--workers", "2", "--project", str(project(workdir, "quarter-dask", quarter))])

        print(f"\n{'run':<32}{'wall s':>9}{'words/s':>12}{'CPU s':>9}{'words/CPU s':>13}{'client MB':>11}")
        for label, run in runs.items():
            print(f"{label:<32}{run['seconds']:>9.1f}{words / run['seconds']:>12,.0f}{run['cpu']:>9.1f}{words / run['cpu']:>13,.0f}{run['client_peak_mb']:>11}")
        print(f"{'import-results into SQLite':<32}{merge['seconds']:>9.1f}{'':>12}{merge['cpu']:>9.1f}{'':>13}{merge['client_peak_mb']:>11}")
        print(f"\nLocalCluster start-up and shut-down (2 workers, no work): {startup:.1f} s")
        print(f"Merge into SQLite: {rows:,} rows (transcripts + segments + suggestions) in {merge['seconds']:.1f} s = {rows / merge['seconds']:,.0f} rows/s")
        print(f"Client peak memory: {small['client_peak_mb']} MB for {args.transcripts // 4:,} transcripts, "
              f"{runs['dask, 2 workers']['client_peak_mb']} MB for {args.transcripts:,}")
        local = words / runs["local engine (2 processes)"]["seconds"]
        one, two = (words / runs[label]["seconds"] for label in ("dask, 1 worker", "dask, 2 workers"))
        print(f"dask / local engine (2 workers each): {two / local:.2f};  2 workers / 1 worker: {two / one:.2f}x")
        per_worker = words / runs["dask, 2 workers"]["cpu"]  # words per CPU-second of a worker, cluster overhead included
        seconds_per_transcript = 1 / (args.transcripts / runs["dask, 2 workers"]["cpu"])
        total = 1_000_000 * seconds_per_transcript
        print("\nExtrapolation to 10^6 transcripts of this length on a 32-worker cluster:")
        print(f"  CPU-seconds per transcript (dask, 2 workers, all processes): {runs['dask, 2 workers']['cpu']:.1f} s / {args.transcripts:,}"
              f" = {seconds_per_transcript * 1000:.2f} ms ({per_worker:,.0f} words per CPU-second)")
        print(f"  10^6 x {seconds_per_transcript * 1000:.2f} ms = {total:,.0f} CPU-seconds = {total / 3600:.1f} CPU-hours")
        efficiency = two / one / 2
        print(f"  32 workers at the measured scaling efficiency ({efficiency:.2f} from 1 to 2): {total:,.0f} / (32 x {efficiency:.2f})"
              f" = {total / (32 * efficiency) / 60:.0f} min, plus {startup:.0f} s start-up;")
        print(f"  merging 10^6 x {rows / args.transcripts:.0f} rows at {rows / merge['seconds']:,.0f} rows/s into SQLite: "
              f"{1_000_000 * rows / args.transcripts / (rows / merge['seconds']) / 60:.0f} min (one writer)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
