"""Leases: locks kept as rows, so that they hold across machines, reconnects and crashes.

A lease has a name ('fit': one model fit per project at a time), a holder and an expiry. Its holder
renews it while it works (``Lease.renew``, at checkpoints); one that stopped renewing it (a killed
process, a machine gone from the network) lets it expire, and the next taker takes it over. A holder that
was a process of the taker's own machine and boot, and no longer runs, is taken over at once. Times are
the taker's clock in UTC: machines sharing a project need clocks within a fraction of the lease's
length, which any synchronised clock is.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from qualcode.errors import ProjectError
from qualcode.store.base import StoreBase, _operation
from qualcode.store.records import holder_gone, holder_record, holder_text

LEASE_SECONDS = 300.0  # how long a lease lasts without renewal
RENEW_EVERY = 30.0  # a holder renews at checkpoints at most this often


def _utc(offset: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).isoformat(timespec="milliseconds")


class LeaseTables(StoreBase):
    """The ``locks`` table's leases."""

    @_operation
    def take_lease(self, name: str, holder: str, seconds: float = LEASE_SECONDS) -> str | None:
        """Take the lease ``name`` for ``seconds`` (or renew it, when ``holder`` has it): None when ``holder`` holds it
        now, else who does (the stored holder)."""
        stamp = _utc()
        with self.transaction():
            self._q(
                "INSERT INTO locks (name, holder, since, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, since = excluded.since, expires_at = excluded.expires_at "
                "WHERE locks.holder = excluded.holder OR (locks.expires_at IS NOT NULL AND locks.expires_at < ?)",
                (name, holder, stamp, _utc(seconds), stamp),
            )
            current = self._one("SELECT holder FROM locks WHERE name = ?", (name,))
        return None if current == holder else str(current)

    @_operation
    def take_lease_over(self, name: str, holder: str, seconds: float = LEASE_SECONDS) -> str | None:
        """``take_lease``, but first freeing the lease from a holder that is a dead process of this machine (see
        ``holder_gone``), so a killed run does not keep others waiting until its lease expires."""
        current = self.take_lease(name, holder, seconds)
        if current is not None and holder_gone(current):
            self.release_lease(name, current)
            current = self.take_lease(name, holder, seconds)
        return current

    @_operation
    def hand_over_lease(self, name: str, giver: str, taker: str, seconds: float = LEASE_SECONDS) -> bool:
        """Pass the lease ``name`` from ``giver`` (who took it for ``taker``) to ``taker``; whether ``giver`` still held it."""
        with self.transaction():
            self._q("UPDATE locks SET holder = ?, since = ?, expires_at = ? WHERE name = ? AND holder = ?",
                    (taker, _utc(), _utc(seconds), name, giver))
            current = self._one("SELECT holder FROM locks WHERE name = ?", (name,))
        return current == taker

    @_operation
    def release_lease(self, name: str, holder: str) -> None:
        with self.transaction():
            self._q("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))

    @_operation
    def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` and has not let it expire, as stored; None when nobody does."""
        row = self._q("SELECT holder, expires_at FROM locks WHERE name = ?", (name,)).fetchone()
        if row is None or (row[1] is not None and row[1] < _utc()):
            return None
        return str(row[0])

    def lease(self, name: str, who: str, *, seconds: float = LEASE_SECONDS, clock: Callable[[], float] = time.monotonic,
              handed: str | None = None) -> "Lease":
        return Lease(self, name, who, seconds=seconds, clock=clock, handed=handed)


def new_holder(who: str) -> str:
    """A lease holder as stored: who, this machine and process (``holder_record``) and a token of its own, so two
    processes of one coder on one machine are two holders."""
    return holder_record(who)[:-1] + f', "token": "{uuid.uuid4().hex}"}}'


class LeaseTaken(ProjectError):
    """Another process holds the lease."""

    def __init__(self, name: str, holder: str) -> None:
        self.holder = holder
        super().__init__(f"the '{name}' lease is held by {holder_text(holder)}", fix="wait for it to finish; nothing needs to be done")


class LeaseLost(ProjectError):
    """This process held a lease and lost it: it expired (the process stalled past it) and another took it over."""


class Lease:
    """A lease this process holds while it works: ``with store.lease('fit', 'ann'):`` takes it (``LeaseTaken`` when
    another holds it), ``renew()`` at checkpoints keeps it, and leaving the block releases it.

    ``handed``: the holder that took the lease for this process before starting it (a review starting a background
    fit); the lease passes from it to this process, or is taken as usual when it has lapsed meanwhile."""

    def __init__(self, store: LeaseTables, name: str, who: str, *, seconds: float = LEASE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, handed: str | None = None) -> None:
        self.store, self.name, self.seconds, self.clock = store, name, seconds, clock
        self.holder, self.handed = new_holder(who), handed
        self.renewed = 0.0

    def __enter__(self) -> "Lease":
        if self.handed is not None and self.store.hand_over_lease(self.name, self.handed, self.holder, self.seconds):
            self.renewed = self.clock()
            return self
        current = self.store.take_lease_over(self.name, self.holder, self.seconds)
        if current is not None:
            raise LeaseTaken(self.name, current)
        self.renewed = self.clock()
        return self

    def renew(self) -> None:
        """Keep the lease (at most every ``RENEW_EVERY`` seconds); ``LeaseLost`` when another has taken it over."""
        if self.clock() - self.renewed < min(RENEW_EVERY, self.seconds / 4):
            return
        current = self.store.take_lease(self.name, self.holder, self.seconds)
        if current is not None:
            raise LeaseLost(f"the '{self.name}' lease expired while this process worked and was taken by {holder_text(current)}",
                            fix="nothing was saved twice; the other process carries on")
        self.renewed = self.clock()

    def __exit__(self, *exc: object) -> None:
        try:
            self.store.release_lease(self.name, self.holder)
        except ProjectError:  # the database is gone: the lease expires on its own
            pass
