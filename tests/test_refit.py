"""Refitting beside review (issues 22 and 26): one fit per project at a time, held by a lease in the database that
survives a crash and expires; review never waits for a fit, and shows the refitted suggestions on the segments ahead."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import call, open_store, write

from qualcode.project import Project
from qualcode.review.session import ReviewFilter, ReviewSession
from qualcode.run.coding import code
from qualcode.store import LeaseLost, LeaseTaken
from qualcode.suggest.refit import BackgroundRefit, Refitter
from qualcode.suggest.training import FitRunning, refit_due, train

CODEBOOK = """\
codes:
  - id: money
    label: Money
    keywords: [budget]
"""
MONEY = ["There was a shortfall in the cash flow.", "The shortfall meant the overspend grew.", "A cash shortfall hit us hard.",
         "We faced an overspend and a shortfall.", "Shortfall after shortfall in cash.", "The overspend was a worry for cash.",
         "Cash shortfall again this quarter.", "An overspend, then another shortfall."]
OTHER = ["We met the team on Tuesday.", "The weather was grim all week.", "Our office moved to a new street.", "The report was long and dull.",
         "We had lunch at the cafe.", "The train was late again.", "A new logo was designed.", "The website got a refresh."]


@pytest.fixture
def due(tmp_path, backend):
    """A project whose sixteen reviewed segments make a refit due (retrain_after: 10), and a transcript still to review."""
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "qualcode.yaml", "retrain_after: 10\n")
    turns = "\n\n".join(f"Q: Question?\nA: {text}" for text in MONEY + OTHER)
    write(tmp_path / "transcripts" / "train-01.txt", "---\nrole: lead\n---\n" + turns + "\n")
    write(tmp_path / "transcripts" / "new-01.txt", "Q: And now?\nA: Another cash shortfall is coming.\n\nQ: Else?\nA: Our overspend is cash.\n")
    call(code, tmp_path)
    with Project.open(tmp_path) as opened:
        session = ReviewSession(opened, coder="ann", filters=ReviewFilter(include_unsuggested=True, transcript="train-01"))
        for item in list(session.items):
            if "shortfall" in item.text or "overspend" in item.text:
                session.add_code("money")
            session.accept_all()
    return tmp_path


def test_a_lease_is_held_by_one_holder_renewed_by_it_and_taken_over_once_it_expires(tmp_path, backend):
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "transcripts" / "a.txt", "Q: ?\nA: The budget.\n")
    call(code, tmp_path)
    clock = [0.0]
    with open_store(tmp_path) as store, open_store(tmp_path) as other:
        with store.lease("fit", "ann", seconds=0.5, clock=lambda: clock[0]) as held:
            with pytest.raises(LeaseTaken) as taken, other.lease("fit", "bob"):
                pass
            assert '"holder": "ann"' in taken.value.holder and "ann on " in str(taken.value)
            assert other.lease_holder("fit") == held.holder
            clock[0] = 10.0
            held.renew()  # renewed in time: still ann's
            time.sleep(0.6)  # ann stopped renewing (a killed process): the lease expires ...
            assert other.lease_holder("fit") is None
            with other.lease("fit", "bob", seconds=30):  # ... and bob takes it over
                clock[0] = 20.0
                with pytest.raises(LeaseLost, match="taken by bob"):
                    held.renew()
            assert other.lease_holder("fit") is None  # bob released it; ann's release takes nothing from anyone
        assert store.take_lease("fit", "carol") is None and other.lease_holder("fit") == "carol"


def test_a_lease_held_by_a_killed_process_of_this_machine_is_taken_over_at_once(tmp_path, backend):
    """A run killed with SIGKILL cannot release its lease: another on the same machine sees that its process is gone and
    takes the lease at once, rather than after five minutes. A live holder, or one on another machine, keeps it."""
    import json
    import signal
    import sys

    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "transcripts" / "a.txt", "Q: ?\nA: The budget.\n")
    call(code, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from qualcode.project import Project\n"
                               "with Project.open(sys.argv[1]) as p, p.store.lease('code', 'ann'):\n"
                               "    print('held', flush=True); time.sleep(120)\n", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)  # the backend's database reaches it through the environment
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with open_store(tmp_path) as store:
            with pytest.raises(LeaseTaken), store.lease("code", "bob"):  # it runs: it keeps the lease
                pass
            elsewhere = json.dumps({"holder": "carl", "host": "another-machine", "boot": "b", "pid": 1, "since": "2026-12-02T10:00:00+00:00"})
            store.take_lease("fit", elsewhere)
            with pytest.raises(LeaseTaken), store.lease("fit", "bob"):  # another machine's process cannot be asked
                pass
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
            with store.lease("code", "bob") as taken:  # killed: taken over at once
                assert store.lease_holder("code") == taken.holder
    finally:
        holder.kill()
        holder.wait()


def test_review_never_waits_for_a_fit_and_the_segments_ahead_show_the_refitted_suggestions(due):
    with Project.open(due) as opened:
        assert refit_due(opened)
        session = ReviewSession(opened, coder="ann", filters=ReviewFilter(include_unsuggested=True, transcript="new-01"))
        assert [item.suggestions for item in session.items] == [[], []]  # the rules know no 'shortfall'
        refitter = Refitter(opened)
        started = time.perf_counter()
        assert refitter.start()
        assert time.perf_counter() - started < 0.5  # the process is started, not waited for
        assert not refitter.start()  # one at a time
        outcome = refitter.current.wait(120)
        assert outcome is not None and outcome.run == 1 and outcome.error is None and outcome.examples == 16
        assert session.refresh_suggestions() == 1  # the segment on screen keeps what the coder reads; the one ahead changes
        [ahead] = session.items[1].suggestions
        assert (ahead.code, str(ahead.source)) == ("money", "model")
        assert not refit_due(opened)  # no new decisions since


def test_eight_fits_started_together_start_one_process(due):
    """The lease is taken before the fitting process starts (it loads for a second or more before it could take it):
    eight reviews asking at once start one process, not eight that each find the lease taken once loaded."""
    with Project.open(due) as opened:
        fits = [BackgroundRefit.start(opened) for _ in range(8)]
        assert fits[0] is not None and fits[1:] == [None] * 7
        assert opened.store.lease_holder("fit") is not None  # held for the process while it loads
        pid = fits[0]._process.pid
        if fits[0]._process.poll() is None and hasattr(os, "SCHED_IDLE"):  # it takes the processor only when nobody else wants it
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
            group = Path(f"/proc/{pid}/autogroup")  # and so does the scheduling group of its session, where Linux has them
            if group.exists() and Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
                assert group.read_text().split()[-1] == "19", group.read_text()
        outcome = fits[0].wait(180)
    assert outcome is not None and outcome.error is None and outcome.run == 1, outcome
    with open_store(due) as store:
        assert store.latest_model_run().id == 1 and store.lease_holder("fit") is None


def test_a_fitting_process_that_dies_before_taking_its_lease_leaves_it_to_nobody(due):
    with Project.open(due) as opened:
        fit = BackgroundRefit.start(opened)
        assert fit is not None
        fit._process.kill()  # killed while loading: it never took the lease over
        outcome = fit.wait(60)
        assert outcome is not None and "without a word" in (outcome.error or "")
        assert opened.store.lease_holder("fit") is None
        again = BackgroundRefit.start(opened)  # the next review starts one at once
        assert again is not None and again.wait(180).run == 1


def test_a_fit_handed_a_lease_that_lapsed_meanwhile_takes_it_as_usual_or_says_who_has_it(due):
    with open_store(due) as store:
        store.take_lease("fit", "gone-holder", seconds=0.01)
        time.sleep(0.05)
        with store.lease("fit", "ann", handed="gone-holder") as lease:  # lapsed, nobody else: taken as usual
            assert store.lease_holder("fit") == lease.holder
        store.take_lease("fit", "zed")
        with pytest.raises(LeaseTaken), store.lease("fit", "ann", handed="gone-holder"):  # another took it: refused
            pass


def test_train_while_another_fit_holds_the_lease_says_so(due):
    with open_store(due) as store, store.lease("fit", "zed"):
        with pytest.raises(FitRunning, match="refitted already .zed on "):
            call(train, due)


@pytest.mark.postgres_only
def test_a_fit_started_as_the_server_restarts_waits_for_it(due, server_control):
    """Issue 26: in the team benchmark's restart run a fit starting while the server was down ended at once with 'cannot
    reach the database server'; the fitting process opens its database as `code` does, waiting 5 s for it."""
    with Project.open(due) as opened:
        fit = BackgroundRefit.start(opened)  # the lease is taken here; the process loads for a second or more
        assert fit is not None
        subprocess.run([*server_control, "stop"], check=True, capture_output=True)
        time.sleep(1.5)
        subprocess.run([*server_control, "start"], check=True, capture_output=True)
        outcome = fit.wait(180)
    assert outcome is not None and outcome.error is None and outcome.run == 1, outcome
