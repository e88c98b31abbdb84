"""Refitting the models beside a review, in a process of its own, so a coder's screen never waits for a fit.

``BackgroundRefit.start(project)`` starts a fit when one is due (``refit_due``) and returns at once; the review
loop asks ``poll()`` between keys and, once the fit is done, shows the segments ahead with the new suggestions. The
fit holds the project's 'fit' lease (``train``), so eight coders opening review together start one fit, not eight,
and the others carry on with the current models. A fit outlives the review that started it: quitting never wastes
one, and the next review finds its models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qualcode.errors import QualcodeError
from qualcode.project import Project
from qualcode.settings import default_coder
from qualcode.store.leases import new_holder
from qualcode.suggest.training import FIT_LEASE, FitRunning, refit_due, train

# The fit runs at a lower priority: on a two-core laptop the coder's screen comes first.
FIT_NICENESS = 10
GROUP_NICENESS = 19  # of the fit's own session, the lowest there is


@dataclass(frozen=True)
class RefitOutcome:
    """What a background fit did: a new model run (None: nothing to learn yet), or why it did not."""

    run: int | None = None
    examples: int = 0
    rescored: int = 0
    busy: bool = False  # another process was fitting: its models will do
    error: str | None = None  # the fit failed; review goes on with the models it had


def child_main() -> None:
    """The fitting process (``python -c`` of this, with the project folder and the holder of the 'fit' lease taken for
    it as its arguments): fit, and write the outcome as one JSON line to the pipe it was given. Nothing it or a library
    prints reaches the coder's screen."""
    report = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        with Project.open(sys.argv[1]) as project:
            project.create_store()  # opened for writing: a server restarting as the fit starts is waited for, as by `code`
            result = train(project, handed=sys.argv[2] if len(sys.argv) > 2 else None)
        outcome = RefitOutcome(result.run, result.examples, result.rescored)
    except FitRunning:
        outcome = RefitOutcome(busy=True)
    except QualcodeError as exc:
        outcome = RefitOutcome(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a fit that fails must not take the review with it; say why
        outcome = RefitOutcome(error=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
    try:
        report.write(json.dumps(asdict(outcome)) + "\n")
        report.close()
    except OSError:  # the review that started the fit has ended: its models are saved, nobody is waiting to hear it
        pass


def _lower_priority() -> None:
    """The fit takes the processor only when nothing else wants it. Run in the fitting process before it starts, in the
    session of its own it was given: on Linux that session is a scheduling group of its own ('autogroup'), which the
    kernel shares the processor with as with a coder's whole terminal, whatever the niceness inside it; so the group is
    made nice too (the fit had taken half of two cores from eight coders). Then the process itself: the idle class where
    there is one (a coder's key is served at once, not after the fit's time slice), else nice."""
    try:
        with open("/proc/self/autogroup", "w", encoding="ascii") as group:
            group.write(str(GROUP_NICENESS))
    except OSError:  # not Linux, or autogroups are off: nothing shares out by session
        pass
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError:
            pass
    os.nice(FIT_NICENESS)


class BackgroundRefit:
    """A fit running in a process of its own (a new session: Ctrl-C in the review does not stop it)."""

    def __init__(self, process: Any, project: Project, holder: str) -> None:
        self._process, self._project, self._holder = process, project, holder
        self.outcome: RefitOutcome | None = None

    @classmethod
    def start(cls, project: Project) -> "BackgroundRefit | None":
        """Start a fit when one is due and nobody else is fitting; None otherwise.

        The 'fit' lease is taken here, before the process starts, and handed to it: a fitting process spends a second
        or more loading before it could take the lease itself, and other coders' reviews asking meanwhile would each
        start a fit of their own only to find the lease taken (eight coders keying fast started a dozen)."""
        if not refit_due(project):
            return None
        holder = new_holder(default_coder(project.settings))
        if project.store.take_lease_over(FIT_LEASE, holder) is not None:
            return None  # another review took it first
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", "from qualcode.suggest.refit import child_main; child_main()", str(Path(project.root)), holder],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_lower_priority,  # noqa: PLW1509 - no threads run in the parent when review starts a fit
            )
        except BaseException:
            project.store.release_lease(FIT_LEASE, holder)
            raise
        return cls(process, project, holder)

    @property
    def running(self) -> bool:
        return self.outcome is None

    def poll(self) -> RefitOutcome | None:
        """The outcome, once, when the fit has finished; None while it runs (and after it was read)."""
        if self.outcome is not None or self._process.poll() is None:
            return None
        return self._finish()

    def wait(self, timeout: float | None = None) -> RefitOutcome | None:
        """Block until the fit is done (tests, and commands that want its models now)."""
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll()

    def _finish(self) -> RefitOutcome:
        try:  # a process that ended before taking its lease over leaves it to nobody (after a hand-over: nothing)
            self._project.store.release_lease(FIT_LEASE, self._holder)
        except QualcodeError:
            pass  # the database is gone: the lease expires on its own
        raw = self._process.stdout.read() if self._process.stdout is not None else b""
        try:
            self.outcome = RefitOutcome(**json.loads(raw.decode("utf-8").strip().splitlines()[-1]))
        except (ValueError, IndexError, TypeError):
            self.outcome = RefitOutcome(error=f"the fitting process ended without a word (exit code {self._process.returncode})")
        return self.outcome


class Refitter:
    """Keeps a review's models fresh: starts a background fit whenever one is due (checked every ``check_every``
    actions), one at a time, and hands back each finished fit's outcome once."""

    def __init__(self, project: Project, *, check_every: int = 10) -> None:
        self.project, self.check_every = project, check_every
        self.current: BackgroundRefit | None = None
        self._actions = 0

    def due(self) -> bool:
        """Whether a fit would start now (a review says so on its first screen, and starts it once that is drawn)."""
        return (self.current is None or not self.current.running) and refit_due(self.project)

    def start(self) -> bool:
        """Start a fit if one is due and none is running; whether one started."""
        if self.current is not None and self.current.running:
            return False
        self.current = BackgroundRefit.start(self.project)
        return self.current is not None

    def after_action(self) -> RefitOutcome | None:
        """Called after each key: the outcome of a fit that has just finished, if any (and a new fit, when due)."""
        outcome = self.current.poll() if self.current is not None else None
        self._actions += 1
        if self._actions % self.check_every == 0:
            self.start()
        return outcome
