"""Exports of huge codebooks: time and peak memory of `qualcode export --status suggested` as the codebook grows.

Every code fires on every segment (the worst case for co-occurrence: all pairs occur), on the same
transcripts, so codings grow with the codes. A 50-code codebook measured in the same run is the
baseline; the figures to read are seconds and peak memory per coding, which stay flat when an
export's work is proportional to its codings (and not to codes squared).

Needs GNU time (/usr/bin/time, Debian's 'time'). Run: .venv/bin/python benchmarks/export_scale.py [--codes 50,500,2000,10000] [--transcripts 10]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUALCODE = [sys.executable, "-m", "qualcode"]


def make_project(root: Path, codes: int, transcripts: int) -> None:
    lines = ["name: scale", "codes:"]
    for index in range(codes):
        lines += [f"  - id: c{index}", f"    label: Code {index}", "    keywords: [deadline]"]
    (root / "codebook.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "transcripts").mkdir()
    for number in range(transcripts):
        turns = "".join(f"Interviewer: Question {k}?\n\nRespondent: The deadline number {k} was hard.\n\n" for k in range(5))
        (root / "transcripts" / f"lead-{number:03}.txt").write_text(turns, encoding="utf-8")


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and the command's own peak resident memory in MB (GNU time's %M)."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", default="50,500,2000,10000")
    parser.add_argument("--transcripts", type=int, default=10)
    args = parser.parse_args()
    sizes = [int(value) for value in args.codes.split(",")]
    rows = []
    for codes in sizes:
        root = Path(tempfile.mkdtemp(prefix="qualcode-export-scale-"))
        try:
            make_project(root, codes, args.transcripts)
            measure([*QUALCODE, "code", "-p", str(root)])
            seconds, peak = measure([*QUALCODE, "export", "--status", "suggested", "-p", str(root)])
            codings = sum(1 for _ in (root / "exports" / "codings.csv").open(encoding="utf-8")) - 1
            pairs = sum(1 for _ in (root / "exports" / "co_occurrence.csv").open(encoding="utf-8")) - 1
            xlsx = (root / "exports" / "themes.xlsx").stat().st_size / 1e6
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append((codes, codings, pairs, seconds, peak, xlsx))
        print(f"{codes:>6} codes  {codings:>9,} codings  {pairs:>7,} pairs listed  {seconds:7.1f} s  peak {peak:7.0f} MB  "
              f"themes.xlsx {xlsx:6.1f} MB  {1e6 * seconds / codings:6.1f} us/coding", flush=True)
    base = rows[0]
    print(f"\nagainst {base[0]} codes ({base[1]:,} codings), measured in this run:")
    for codes, codings, _pairs, seconds, peak, _xlsx in rows[1:]:
        print(f"{codes:>6} codes: {codings / base[1]:6.1f}x the codings, {seconds / base[3]:6.1f}x the time, {peak / base[4]:5.2f}x the peak memory")


if __name__ == "__main__":
    main()
