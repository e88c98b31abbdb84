"""Peak memory of `qualcode code` on large inputs, against a baseline measured in the same run.

* a single 50 MB transcript (max_transcript_mb raised to 100 for it);
* a folder of 5,000 transcripts (about 4 million words);
* baseline: `qualcode codebook --check`, i.e. Python with qualcode and spaCy loaded.

Peak resident memory (ru_maxrss) of each run is read from the finished child process.
Run: .venv/bin/python benchmarks/memory.py [--transcripts 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qualcode.ingest.transcripts import discover, read_transcript  # noqa: E402


def peak_mb(args: list[str]) -> tuple[float, float, int]:
    """Run a command in a child process; its peak RSS in MB, seconds taken, exit code."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(sys.executable, [sys.executable, *args])
    _pid, status, usage = os.wait4(pid, 0)
    return usage.ru_maxrss / 1024, time.perf_counter() - start, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qualcode-memory-"))
    files, _ = discover([REPO / "transcripts"])
    samples = [read_transcript(path).text for path in files]
    try:
        base = workdir / "base"
        base.mkdir()
        shutil.copy(REPO / "codebook.yaml", base / "codebook.yaml")
        baseline, _, _ = peak_mb(["-m", "qualcode", "codebook", "--check", "--project", str(base)])

        big = workdir / "big"
        (big / "transcripts").mkdir(parents=True)
        shutil.copy(REPO / "codebook.yaml", big / "codebook.yaml")
        (big / "qualcode.yaml").write_text("max_transcript_mb: 100\n")
        with (big / "transcripts" / "huge.txt").open("w", encoding="utf-8") as out:
            written = 0
            index = 0
            while written < args.megabytes * 1024 * 1024:
                text = samples[index % len(samples)] + "\n\n"
                out.write(text)
                written += len(text.encode())
                index += 1
        big_peak, big_seconds, big_exit = peak_mb(["-m", "qualcode", "code", "--project", str(big)])

        many = workdir / "many"
        (many / "transcripts").mkdir(parents=True)
        shutil.copy(REPO / "codebook.yaml", many / "codebook.yaml")
        rng = random.Random(5)
        total = 0
        for index in range(args.transcripts):
            turns = re.split(r"\n\s*\n", samples[index % len(samples)].strip())
            rng.shuffle(turns)
            text = "\n\n".join(turns) + "\n"
            total += len(text.encode())
            (many / "transcripts" / f"t{index:05d}.txt").write_text(f"---\nrole: lead\n---\n{text}", encoding="utf-8")
        many_peak, many_seconds, many_exit = peak_mb(["-m", "qualcode", "code", "--project", str(many)])

        print(f"baseline (qualcode + spaCy loaded, codebook --check): peak {baseline:7.0f} MB")
        print(f"one {args.megabytes} MB transcript:            peak {big_peak:7.0f} MB  ({big_peak / baseline:.1f}x baseline, {big_seconds:.0f} s, exit {big_exit})")
        print(f"{args.transcripts} transcripts, {total / 1024 / 1024:.0f} MB: peak {many_peak:7.0f} MB  ({many_peak / baseline:.1f}x baseline, {many_seconds:.0f} s, exit {many_exit})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
