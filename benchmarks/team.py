"""A team coding one project at once: 8 coder processes review through the library while a
`qualcode code` run imports 200 new transcripts, on PostgreSQL and, for comparison, on SQLite.

Each coder is a process with its own ReviewSession, as `qualcode review` runs it: the first screen drawn (timed from
opening the project), then keys (accept, reject, toggle, undo) for a fixed time, each timed from the key to the next
screen drawn (an 80x24 screen rendered, the decision committed before it), logging the decision ids each acknowledged
action got back. Retraining is on (retrain_after: 50, the default): every coder's review starts a background fit when
one is due, one fit at a time per project (the 'fit' lease), and swaps the refitted suggestions in between keys. Afterwards the database must
hold every acknowledged decision (none lost), each batch id must belong to one action of one
coder (no duplicates), and no action may have failed. A third run restarts the PostgreSQL
server half-way through (pg_ctlcluster) and counts what was lost.

Needs a PostgreSQL server from libpq's environment, e.g.:
    pg_virtualenv -t .venv/bin/python benchmarks/team.py [--coders 8] [--seconds 20] [--transcripts 200] [--think 1.5]

With --think, each coder reads for about that many seconds between keys, as people do; without it keys come back to
back, a stress test of two cores shared by eight coders, a batch import and a fit.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import build_corpus  # noqa: E402

from qualcode.project import Project  # noqa: E402
from qualcode.review.session import ReviewFilter, ReviewSession  # noqa: E402
from qualcode.run.coding import code  # noqa: E402
from qualcode.store import Store  # noqa: E402

ACTIONS = "aaxa1xau"  # mostly accept/reject (each writes several rows), some toggles and undos


def coder_process(project_dir: str, coder: str, seconds: float, start_at: float, results: multiprocessing.Queue, think: float = 0.0) -> None:
    import io

    from rich.console import Console

    from qualcode.cli.review import render_screen
    from qualcode.suggest.refit import Refitter

    latencies: list[float] = []
    acknowledged: list[list[int]] = []
    errors: list[str] = []
    screen = Console(file=io.StringIO(), width=80, height=24, color_system=None)

    def draw(session: ReviewSession) -> None:
        screen.file = io.StringIO()
        screen.print(render_screen(session, fit=screen))

    while time.time() < start_at - 2:
        time.sleep(0.01)
    opened_at = time.perf_counter()  # every coder opens review at once, as eight people starting their day
    with Project.open(project_dir) as project:
        session = ReviewSession(project, coder=coder, filters=ReviewFilter(include_unsuggested=True))
        refitter = Refitter(project)
        draw(session)
        first_screen = time.perf_counter() - opened_at
        refitter.start()  # as review does: once the first screen is drawn
        store = session.store
        original = store.record

        def logged(entries, **kwargs):
            ids = original(entries, **kwargs)
            acknowledged.append(ids)
            return ids

        store.record = logged  # type: ignore[method-assign]
        while time.time() < start_at:
            time.sleep(0.01)
        index = 0
        pause = random.Random(coder)
        drawn_at = time.perf_counter()
        finished_early = False
        while time.time() < start_at + seconds:
            # The key is pressed once the coder has read the screen (uniform between half and one and a half times
            # --think), counted from when the screen was drawn: what review does meanwhile (idle) delays it when longer.
            began = drawn_at + (think * pause.uniform(0.5, 1.5) if think else 0.0)
            if time.perf_counter() < began:
                time.sleep(began - time.perf_counter())
            key = ACTIONS[index % len(ACTIONS)]
            index += 1
            try:
                if key == "a":
                    session.accept_all()
                elif key == "x":
                    session.reject_all()
                elif key == "1":
                    session.toggle(1)
                else:
                    session.undo()
                outcome = refitter.after_action()
                if outcome is not None and outcome.run is not None:
                    session.refresh_suggestions()
                if outcome is not None and outcome.error:
                    errors.append(f"refit: {outcome.error}")
                draw(session)
                drawn_at = time.perf_counter()
                latencies.append(drawn_at - began)
                session.idle()  # as review does once the screen is drawn, while the coder reads it
            except Exception as exc:  # counted, not hidden: the goal is none
                errors.append(f"{type(exc).__name__}: {exc}")
                drawn_at = time.perf_counter()
                continue
            if session.finished:  # reviewed to the end: what was imported since is the next queue; none, and this coder is done
                session = ReviewSession(project, coder=coder, filters=ReviewFilter(include_unsuggested=True))
                session.store.record = logged  # type: ignore[method-assign]
                if session.finished:
                    finished_early = True
                    break
        if refitter.current is not None:
            refitter.current.wait(120)  # a fit this coder started finishes before the counts are read
    if finished_early:  # keys on a finished queue would each open a new session: not what a coder does, and not measured
        errors.append("finished the queue before the time was up: give the project more transcripts")
    results.put((coder, latencies, acknowledged, errors, first_screen))


def server_control() -> list[str] | None:
    port = os.environ.get("PGPORT", "5432")
    if shutil.which("pg_lsclusters") is None:
        return None
    for line in subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == port and fields[3] == "online":
            return ["pg_ctlcluster", fields[0], fields[1]]
    return None


def run_team(workdir: Path, database: str | None, coders: int, seconds: float, transcripts: int, restart: bool, think: float = 0.0) -> dict:
    project_dir = workdir / f"team-{uuid.uuid4().hex[:6]}"
    project_dir.mkdir()
    shutil.copy(REPO / "codebook.yaml", project_dir / "codebook.yaml")
    (project_dir / "qualcode.yaml").write_text("retrain_after: 50\nworkers: 1\n" + (f"database: {database}\n" if database else ""))
    # Enough segments (about 1,700) that no coder keying back to back for 20 s reaches the end of the queue.
    build_corpus(project_dir / "transcripts", target_words=150 * 830, seed=3)
    incoming = workdir / f"incoming-{uuid.uuid4().hex[:6]}"
    build_corpus(incoming, target_words=transcripts * 830, seed=11)
    for index, path in enumerate(sorted(incoming.iterdir())):
        path.rename(incoming / f"new-{index:04d}{path.suffix}")
    with Project.open(project_dir) as project:
        code(project)
    results: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 6  # coders open review 2 s before the keys start
    processes = [multiprocessing.Process(target=coder_process, args=(str(project_dir), f"coder-{n}", seconds, start_at, results, think)) for n in range(coders)]
    for process in processes:
        process.start()
    while time.time() < start_at:
        time.sleep(0.01)
    importer = subprocess.Popen([sys.executable, "-m", "qualcode", "code", "--project", str(project_dir), str(incoming)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    restarted = None
    if restart:
        control = server_control()
        if control is None:
            raise SystemExit("no pg_ctlcluster-managed cluster on PGPORT to restart")
        time.sleep(seconds / 2)
        began = time.perf_counter()
        subprocess.run([*control, "restart"], check=True, capture_output=True)
        restarted = time.perf_counter() - began
    collected = [results.get(timeout=seconds + 300) for _ in processes]
    for process in processes:
        process.join()
    _out, importer_errors = importer.communicate(timeout=1200)
    with Store(database or project_dir / ".qualcode" / "project.db") as store:
        rows = store.decisions()
        transcripts_in = len(store.transcripts())
        model_runs = len(list(store.table_rows("model_runs")))
    batch_of = {row.id: row.batch for row in rows}
    latencies = [value for _coder, values, _acks, _errors, _first in collected for value in values]
    first_screens = [first for *_rest, first in collected]
    acknowledged_ids = [i for _coder, _values, acks, _errors, _first in collected for ids in acks for i in ids]
    # A duplicate batch id: one batch holding two actions (of one coder or two), or one action spread over two batches.
    actions_in_batch: dict[int, int] = defaultdict(int)
    duplicates = 0
    for _coder, _values, acks, _errors, _first in collected:
        for ids in acks:
            batches = {batch_of[i] for i in ids if i in batch_of}
            duplicates += len(batches) > 1
            for batch in batches:
                actions_in_batch[batch] += 1
    duplicates += sum(1 for count in actions_in_batch.values() if count > 1)
    errors = [error for _coder, _values, _acks, errs, _first in collected for error in errs]
    return {
        "backend": "postgresql" if database else "sqlite",
        "restart": restarted,
        "actions": len(latencies),
        "decisions": len(acknowledged_ids),
        "per_second": len(acknowledged_ids) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000,
        "max_ms": max(latencies) * 1000,
        "lost": len(set(acknowledged_ids) - set(batch_of)),
        "duplicate_batches": duplicates,
        "errors": len(errors) + (importer.returncode != 0),
        "error_samples": errors[:3] + ([importer_errors.decode()[-300:]] if importer.returncode else []),
        "transcripts": transcripts_in,
        "importer_exit": importer.returncode,
        "first_screen_ms": statistics.median(first_screens) * 1000,
        "first_screen_max_ms": max(first_screens) * 1000,
        "model_runs": model_runs,
    }


def fresh_database() -> str:
    import psycopg

    name = f"qualcode_team_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("", dbname=os.environ.get("PGDATABASE", "postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql:///{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--transcripts", type=int, default=200)
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds a coder reads between keys (uniform 0.5x-1.5x); 0: keys back to back, a stress test")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qualcode-team-"))
    try:
        runs = [
            run_team(workdir, None, args.coders, args.seconds, args.transcripts, restart=False, think=args.think),
            run_team(workdir, fresh_database(), args.coders, args.seconds, args.transcripts, restart=False, think=args.think),
            run_team(workdir, fresh_database(), args.coders, args.seconds, args.transcripts, restart=True, think=args.think),
        ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.coders} coders opening review together and reviewing for {args.seconds:g} s, retraining on (retrain_after: 50), "
          f"while `qualcode code` imports {args.transcripts} new transcripts; "
          + (f"each coder reads {args.think:g} s (0.5x-1.5x) between keys" if args.think else "keys back to back (no reading time)")
          + ". Key to next screen (80x24 drawn), in ms:")
    print(f"{'backend':<22}{'actions':>9}{'decisions':>11}{'dec/s':>8}{'p50':>7}{'p95':>7}{'max':>7}{'1st screen':>12}{'lost':>6}{'dup':>5}"
          f"{'errors':>8}{'imported':>10}{'fits':>6}")
    for run in runs:
        label = run["backend"] + (f" + restart ({run['restart']:.1f} s)" if run["restart"] else "")
        print(f"{label:<22}{run['actions']:>9}{run['decisions']:>11}{run['per_second']:>8.0f}{run['p50_ms']:>7.1f}{run['p95_ms']:>7.1f}"
              f"{run['max_ms']:>7.0f}{run['first_screen_ms']:>6.0f}/{run['first_screen_max_ms']:<5.0f}{run['lost']:>6}{run['duplicate_batches']:>5}"
              f"{run['errors']:>8}{run['transcripts']:>10}{run['model_runs']:>6}")
        for sample in run["error_samples"]:
            print("   error:", sample)
    sqlite, server = runs[0], runs[1]
    print(f"PostgreSQL / SQLite decisions per second: {server['per_second'] / sqlite['per_second']:.2f}")


if __name__ == "__main__":
    main()
