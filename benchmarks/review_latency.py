"""Screen-update latency of `qualcode review` on a project of 100 transcripts.

Times each keystroke's work as the CLI does it (the action, which commits its
decisions, then rendering the next screen to an 80x24 console), against a
baseline measured in the same run: rendering the same screens with no action.

Run: .venv/bin/python benchmarks/review_latency.py [--transcripts 100] [--keys 400]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from rich.console import Console  # noqa: E402
from throughput import build_corpus  # noqa: E402

from qualcode.cli.review import render_screen  # noqa: E402
from qualcode.project import Project  # noqa: E402
from qualcode.review.session import ReviewFilter, ReviewSession  # noqa: E402
from qualcode.run.coding import code  # noqa: E402

# A researcher's mix: mostly accept/reject, some toggles, skips, undos and widened context.
KEY_CYCLE = ["a", "1", "a", "x", "2", "u", "a", "s", "1", "x", "a", "w", "a"]


def act(session: ReviewSession, key: str, state: dict) -> None:
    if key == "a":
        session.accept_all()
    elif key == "x":
        session.reject_all()
    elif key.isdigit():
        session.toggle(int(key))
    elif key == "s":
        session.skip()
    elif key == "u":
        session.undo()
    elif key == "w":
        state["widen"] = not state["widen"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, default=100)
    parser.add_argument("--keys", type=int, default=400)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qualcode-review-bench-"))
    try:
        shutil.copy(REPO / "codebook.yaml", workdir / "codebook.yaml")
        build_corpus(workdir / "transcripts", target_words=args.transcripts * 830)
        project = Project.open(workdir)
        result = code(project)
        project.close()
        project = Project.open(workdir)
        start = time.perf_counter()
        session = ReviewSession(project, coder="bench", filters=ReviewFilter(include_unsuggested=True))
        opened = time.perf_counter() - start
        print(f"Project: {len(result.imported)} transcripts, {result.segments} segments; queue of {len(session.items)} opened in {opened * 1000:.0f} ms")

        console = Console(file=io.StringIO(), width=80, height=24, color_system="truecolor", force_terminal=True)
        state = {"widen": False}
        baseline, latencies = [], []
        for index in range(args.keys):
            key = KEY_CYCLE[index % len(KEY_CYCLE)]
            start = time.perf_counter()
            console.print(render_screen(session, widen=state["widen"]))
            baseline.append(time.perf_counter() - start)
            console.file = io.StringIO()
            start = time.perf_counter()
            act(session, key, state)
            console.print(render_screen(session, widen=state["widen"]))
            latencies.append(time.perf_counter() - start)
            console.file = io.StringIO()
        decisions = project.store.counts()["decisions"]
        project.close()
        ms = lambda values, f: f(values) * 1000  # noqa: E731
        print(f"{args.keys} keystrokes, {decisions} decision rows written (each action committed before the screen is drawn)")
        print(f"  {'':<34}{'median':>10}{'p95':>10}{'max':>10}")
        print(f"  {'render only (baseline)':<34}{ms(baseline, statistics.median):>8.1f}ms{ms(baseline, lambda v: percentile(v, 0.95)):>8.1f}ms{ms(baseline, max):>8.1f}ms")
        print(f"  {'keystroke: action + render':<34}{ms(latencies, statistics.median):>8.1f}ms{ms(latencies, lambda v: percentile(v, 0.95)):>8.1f}ms{ms(latencies, max):>8.1f}ms")
        print(f"ratio to baseline (median): {statistics.median(latencies) / statistics.median(baseline):.2f}   goal: well under 100 ms per keystroke")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
