"""Kill `qualcode code` and `qualcode review` with SIGKILL at random points, then check the project.

After every kill: the database opens, passes PRAGMA integrity_check and qualcode's own
consistency checks, every transcript in it is whole (its segments are exactly those of
its file), and every review decision acknowledged before the kill (its next screen was
printed) is in the database. Also runs `qualcode code` beside two reviewing coders.

Run: .venv/bin/python benchmarks/crash.py [--kills 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import build_corpus  # noqa: E402

from qualcode.ingest.transcripts import read_transcript  # noqa: E402
from qualcode.store import Store  # noqa: E402

FOOTER = b"q:quit"


def make_project(folder: Path, words: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "codebook.yaml", folder / "codebook.yaml")
    (folder / "qualcode.yaml").write_text("workers: 1\nretrain_after: 0\n")
    build_corpus(folder / "transcripts", words)
    return folder


def qualcode(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qualcode", *args], start_new_session=True, **kwargs)


def kill(process: subprocess.Popen) -> bool:
    """SIGKILL the process group; True if it was still running."""
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


def verify(project: Path) -> list[str]:
    """Problems found in the project after a kill (empty when all is well)."""
    database = project / ".qualcode" / "project.db"
    if not database.exists():
        return []
    problems = []
    with Store(database) as store:
        problems += store.problems()
        for transcript_id, stored in store.transcripts().items():
            expected = read_transcript(project / stored.path).segments
            rows = store.segments(transcript_id)
            if [(s.start, s.end, s.text) for s in expected] != [(r.start, r.end, r.text) for r in rows]:
                problems.append(f"{transcript_id}: half imported ({len(rows)} of {len(expected)} segments)")
    return problems


def kill_code(kills: int, seed: int, workdir: Path, words: int = 60_000) -> dict:
    rng = random.Random(seed)
    project = make_project(workdir / "code", words)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qualcode", "code", "--project", str(project)], capture_output=True, check=False)
    duration = time.perf_counter() - start
    stats = {"kills": 0, "finished_before_kill": 0, "problems": [], "full_run_seconds": round(duration, 2)}
    shutil.rmtree(project / ".qualcode")
    while stats["kills"] < kills:
        process = qualcode("code", "--project", str(project), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, duration * 1.05))
        if kill(process):
            stats["kills"] += 1
        else:
            stats["finished_before_kill"] += 1
            shutil.rmtree(project / ".qualcode")  # start over so later kills land mid-import again
            continue
        found = verify(project)
        stats["problems"] += [f"kill {stats['kills']}: {problem}" for problem in found]
    stats["survived"] = stats["kills"] - len({problem.split(":")[0] for problem in stats["problems"]})
    return stats


class Reviewer:
    """A `qualcode review` process fed keys through a pipe; a key is acknowledged when the next screen arrives."""

    def __init__(self, project: Path, coder: str) -> None:
        self.process = qualcode("review", "--project", str(project), "--coder", coder, "--plain", "--all",
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.screens = 0
        self.chunks: queue.Queue = queue.Queue()
        self.buffer = b""
        self.errors = b""
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_errors, daemon=True).start()

    def _pump(self) -> None:
        for chunk in iter(lambda: self.process.stdout.read1(65536), b""):
            self.chunks.put(chunk)
        self.chunks.put(None)

    def _pump_errors(self) -> None:
        self.errors = self.process.stderr.read()

    def wait_screens(self, count: int, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.screens < count:
            try:
                chunk = self.chunks.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if chunk is None:
                return False
            self.buffer += chunk
            self.screens = self.buffer.count(FOOTER)
        return True

    def send(self, key: str) -> None:
        self.process.stdin.write(key.encode())
        self.process.stdin.flush()


def reviewed_count(project: Path, coder: str) -> int:
    """Rows written by 'a'/'x' keys: each writes exactly one 'reviewed' row, even on a segment already reviewed."""
    with Store(project / ".qualcode" / "project.db") as store:
        return sum(1 for row in store.decisions(coder) if row.verdict == "reviewed")


def kill_review(kills: int, seed: int, workdir: Path, words: int = 20_000) -> dict:
    rng = random.Random(seed)
    project = make_project(workdir / "review", words)
    subprocess.run([sys.executable, "-m", "qualcode", "code", "--project", str(project)], capture_output=True, check=True)
    stats = {"kills": 0, "keys_sent": 0, "acknowledged": 0, "problems": []}
    coder_round = 0
    acknowledged = sent = 0
    coder = "crash-0"
    while stats["kills"] < kills:
        reviewer = Reviewer(project, coder)
        if not reviewer.wait_screens(1):
            if b"Nothing to review" in reviewer.buffer or reviewer.process.poll() is not None:
                coder_round += 1
                coder, acknowledged, sent = f"crash-{coder_round}", 0, 0
                continue
            stats["problems"].append(f"kill {stats['kills'] + 1}: review did not start: {reviewer.errors[-300:]!r}")
            kill(reviewer)
            continue
        keys = rng.randint(1, 12)
        for index in range(keys):
            reviewer.send(rng.choice("aax"))
            sent += 1
            stats["keys_sent"] += 1
            last = index == keys - 1
            if last and rng.random() < 0.5:
                break  # kill before this key's screen: it may or may not have been saved
            if not reviewer.wait_screens(index + 2):
                break
            acknowledged += 1
            stats["acknowledged"] += 1
        kill(reviewer.process)
        stats["kills"] += 1
        found = verify(project)
        saved = reviewed_count(project, coder)
        if saved < acknowledged:
            found.append(f"{acknowledged - saved} acknowledged decisions missing")
        if saved > sent:
            found.append(f"{saved} reviewed but only {sent} keys sent")
        stats["problems"] += [f"kill {stats['kills']}: {problem}" for problem in found]
    stats["survived"] = stats["kills"] - len({problem.split(":")[0] for problem in stats["problems"]})
    return stats


def concurrent_sessions(workdir: Path, keys_per_coder: int = 40) -> dict:
    """`qualcode code` importing while two coders review the same project in other processes."""
    project = make_project(workdir / "concurrent", 40_000)
    first_half = sorted((project / "transcripts").iterdir())[: len(list((project / "transcripts").iterdir())) // 2]
    subprocess.run([sys.executable, "-m", "qualcode", "code", "--project", str(project), *map(str, first_half)], capture_output=True, check=True)
    reviewers = [Reviewer(project, "ann"), Reviewer(project, "bob")]
    for reviewer in reviewers:
        if not reviewer.wait_screens(1):
            raise RuntimeError(f"review did not start: {reviewer.errors!r}")
    importer = qualcode("code", "--project", str(project), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    acknowledged = {"ann": 0, "bob": 0}
    for index in range(keys_per_coder):
        for reviewer, name in zip(reviewers, ("ann", "bob")):
            reviewer.send("a")
            if reviewer.wait_screens(index + 2):
                acknowledged[name] += 1
    for reviewer in reviewers:
        reviewer.send("q")
        reviewer.process.wait(timeout=60)
    out, err = importer.communicate(timeout=600)
    errors = (err or b"") + b"".join(reviewer.errors for reviewer in reviewers)
    with Store(project / ".qualcode" / "project.db") as store:
        imported = len(store.transcripts())
        saved = {name: reviewed_count(project, name) for name in acknowledged}
    return {
        "processes": 3,
        "importer_exit": importer.returncode,
        "reviewer_exits": [reviewer.process.returncode for reviewer in reviewers],
        "transcripts_imported": imported,
        "transcripts_total": len(list((project / "transcripts").iterdir())),
        "acknowledged": acknowledged,
        "saved": saved,
        "locked_errors": errors.lower().count(b"locked"),
        "problems": verify(project),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qualcode-crash-"))
    try:
        code_stats = kill_code(args.kills, args.seed, workdir)
        print(f"qualcode code: {code_stats['kills']} SIGKILLs survived {code_stats['survived']}, "
              f"{code_stats['finished_before_kill']} runs finished first (full run {code_stats['full_run_seconds']} s)")
        review_stats = kill_review(args.kills, args.seed, workdir)
        print(f"qualcode review: {review_stats['kills']} SIGKILLs survived {review_stats['survived']}; "
              f"{review_stats['keys_sent']} keys sent, {review_stats['acknowledged']} acknowledged")
        concurrent = concurrent_sessions(workdir)
        print(f"concurrent: code + 2 reviewers: exits {concurrent['importer_exit']}, {concurrent['reviewer_exits']}; "
              f"{concurrent['transcripts_imported']}/{concurrent['transcripts_total']} imported; acknowledged {concurrent['acknowledged']}, "
              f"saved {concurrent['saved']}; 'locked' errors: {concurrent['locked_errors']}")
        for problem in code_stats["problems"] + review_stats["problems"] + concurrent["problems"]:
            print("PROBLEM:", problem)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
