"""Temporary files and folders that name their process, so that what a killed process left is recognised and removed.

Everything qualcode writes in place of a finished file (an export, a backup, an imported project) is first built
under a hidden name beside it, ``.{target}.{pid}-{random}.{kind}``, then renamed over the target. A process killed
with SIGKILL cannot remove it; the next process writing the same kind of thing in that folder does, once the process
named in it no longer runs (on this machine: the folder may be shared, so a name whose process still runs, or that
does not follow this form, is left alone).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

# SQLite beside a temporary database (a backup being written) keeps its journal as NAME-journal (or -wal, -shm)
_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>[a-z]+)(?:-journal|-wal|-shm)?$")


def temporary_path(target: Path, kind: str = "tmp") -> Path:
    """A hidden name beside ``target`` for building it, naming this process."""
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` of this machine no longer runs: it does not exist, or it ended and waits to be reaped (a
    zombie holds nothing). False for this process, for a nonsense pid and for another user's running process."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: it runs
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return status.rpartition(")")[2].split()[:1] == ["Z"]


def sweep(folder: Path, kind: str = "tmp") -> list[Path]:
    """Remove what killed processes left in ``folder`` (files or folders of ``kind`` whose process is gone); returns
    what was removed. Never raises: a leftover that cannot be removed stays, as it was."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or match.group("kind") != kind or not process_gone(int(match.group("pid"))):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed
