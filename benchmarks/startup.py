"""Start-up and response times of the commands a researcher runs dozens of times a day.

Every figure is the median of several runs of the real command (a new process each time),
printed beside `python -c pass` and `python -c "import spacy"` measured in the same run,
as ratios, and as the difference from `python -c pass` (what qualcode itself adds). Two projects:

* the sample project (6 transcripts, 60 segments, 7 codes), coded;
* a larger one: 100 transcripts, about 1,000 segments, a 262-code codebook (parents with
  children, keywords drawn from the interviews' own words so that suggestions fire), coded.

On the larger one: `review` until its first screen is on the terminal (a real pty), also with a
refit due (60 decisions since the last fit: the fit runs in the background and the screen must not
wait for it), `stats` and `export --format csv`.

Run: .venv/bin/python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import build_corpus  # noqa: E402

PYTHON = sys.executable
QUALCODE = [PYTHON, "-m", "qualcode"]


def best(command: list[str], runs: int, cwd: Path | None = None) -> float:
    """The median of ``runs`` runs (a new process each): what a researcher waits, typically."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       env={**os.environ, "COLUMNS": "120"})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def first_screen(project: Path, runs: int) -> float:
    """Seconds from starting `qualcode review` in a pseudo-terminal to its first screen's footer."""
    import pexpect

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        child = pexpect.spawn(PYTHON, ["-m", "qualcode", "review", "--project", str(project), "--coder", "bench"],
                              env={**os.environ, "TERM": "xterm"}, dimensions=(24, 80), timeout=60)
        child.expect("q:quit")
        times.append(time.perf_counter() - started)
        child.send("q")
        child.expect(pexpect.EOF)
        child.close()
    return statistics.median(times)


def refit_due_project(large: Path, workdir: Path) -> Path:
    """The large project with 60 decisions since the last fit (none yet) on its three most suggested codes, ten accepted
    and ten rejected each: a refit is due (retrain_after 50) when review opens, and has examples to fit."""
    from qualcode.project import Project
    from qualcode.store import Entry

    due = workdir / "due"
    shutil.copytree(large, due)
    with Project.open(due) as opened:
        store = opened.store
        rows = store.suggestions(evidence=False)
        top = [code for code, _count in Counter(row.code for row in rows).most_common(3)]
        entries = []
        for code in top:
            for index, row in enumerate([row for row in rows if row.code == code][:20]):
                entries.append(Entry(row.segment_id, code, "accepted" if index % 2 else "rejected"))
        store.record(entries, coder="earlier")
    return due


def fitting() -> bool:
    """Whether a background fit (a spawned qualcode process) is still running on this machine."""
    import psutil

    return any("child_main" in " ".join(process.info["cmdline"] or []) for process in psutil.process_iter(["cmdline"]))


def first_screen_refit_due(due: Path, workdir: Path, runs: int) -> tuple[float, float]:
    """Seconds to review's first screen when a refit is due, on a fresh copy each time (the refit runs in the background,
    so the screen must not wait for it); and the seconds until that background fit had saved its models."""
    from qualcode.project import Project

    screens, fits = [], []
    for run in range(runs):
        copy = workdir / f"due-{run}"
        shutil.copytree(due, copy)
        screens.append(first_screen(copy, 1))
        started = time.perf_counter()
        time.sleep(0.5)
        while fitting():  # the fit goes on after review quits; wait for it, so the next run has the machine to itself
            time.sleep(0.2)
        fits.append(time.perf_counter() - started)
        with Project.open(copy, read_only=True) as opened:
            if opened.store.latest_model_run() is None:
                raise SystemExit("the background fit saved no models")
    return statistics.median(screens), statistics.median(fits)


def big_codebook(corpus: Path, codes: int = 262, seed: int = 4) -> str:
    """A codebook of ``codes`` codes in groups of eight, each with three keywords from the interviews' vocabulary."""
    rng = random.Random(seed)
    words = Counter(word for path in corpus.iterdir() for word in re.findall(r"[a-z]{5,}", path.read_text(encoding="utf-8").lower()))
    vocabulary = [word for word, count in words.most_common(3000) if count >= 3]
    lines = ["name: Large codebook", "codes:"]
    made = 0
    group = 0
    while codes - made >= 2:
        lines += [f"  - id: theme-{group:03d}", f"    label: Theme {group}", "    children:"]
        made += 1
        for child in range(min(8, codes - made)):
            keywords = ", ".join(rng.sample(vocabulary, 3))
            lines += [f"      - id: code-{group:03d}-{child}", f"        label: Code {group}.{child}", f"        keywords: [{keywords}]"]
            made += 1
        group += 1
    if made < codes:
        lines += ["  - id: other", "    label: Other", "    manual: true"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qualcode-startup-"))
    try:
        sample = workdir / "sample"
        sample.mkdir()
        shutil.copy(REPO / "codebook.yaml", sample / "codebook.yaml")
        shutil.copytree(REPO / "transcripts", sample / "transcripts")
        subprocess.run([*QUALCODE, "code", "--project", str(sample)], capture_output=True, check=True)

        large = workdir / "large"
        large.mkdir()
        build_corpus(large / "transcripts", target_words=100 * 830, seed=9)
        (large / "codebook.yaml").write_text(big_codebook(large / "transcripts"), encoding="utf-8")
        coded = subprocess.run([*QUALCODE, "code", "--project", str(large)], capture_output=True, text=True, check=False)
        if coded.returncode != 0:
            raise SystemExit(coded.stderr)
        summary = re.search(r"(\d+) transcripts, (\d+) respondent segments", " ".join(coded.stdout.split()))

        baseline = best([PYTHON, "-c", "pass"], args.runs)
        spacy = best([PYTHON, "-c", "import spacy"], args.runs)
        rows = [("python -c pass", baseline, None), ('python -c "import spacy"', spacy, None)]
        for command, goal in (("--help", 0.3), ("--version", 0.3), ("status", 0.3), ("stats", 0.3), ("codebook", 0.3), ("backup", 0.3),
                              ("check", 0.3)):
            rows.append((f"qualcode {command} (sample)", best([*QUALCODE, *command.split(), *([] if command.startswith("--") else ["--project", str(sample)])],
                                                               args.runs), goal))
        rows.append(("qualcode review, first screen (large)", first_screen(large, max(3, args.runs // 2)), 0.5))
        due_screen, fit_after = first_screen_refit_due(refit_due_project(large, workdir), workdir, max(3, args.runs // 2))
        rows.append(("review, first screen, refit due (large)", due_screen, 0.5))
        rows.append(("qualcode stats (large)", best([*QUALCODE, "stats", "--project", str(large)], args.runs), 0.5))
        rows.append(("qualcode export --format csv (large)", best([*QUALCODE, "export", "--format", "csv", "--status", "all", "--project", str(large)],
                                                                  args.runs), 1.0))
        print(f"Large project: {summary.group(1) if summary else '?'} transcripts, {summary.group(2) if summary else '?'} segments, 262 codes")
        print(f"{'':<42}{'seconds':>9}{'- pass':>8}{'x pass':>8}{'x spacy':>9}{'goal':>7}")
        for label, seconds, goal in rows:
            verdict = "" if goal is None else (f"<{goal:g} " + ("ok" if seconds < goal else "MISSED"))
            print(f"{label:<42}{seconds:>9.3f}{seconds - baseline:>8.3f}{seconds / baseline:>8.1f}{seconds / spacy:>9.2f}  {verdict}")
        print(f"With a refit due, the background fit had saved its models {fit_after:.1f} s after the first screen (median).")
        print(f"(median of {args.runs} runs each; median spread of `python -c pass`: {statistics.median([best([PYTHON, '-c', 'pass'], 1) for _ in range(5)]):.3f} s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
