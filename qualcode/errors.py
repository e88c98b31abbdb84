"""Exceptions for user-facing problems.

Each carries enough to tell the researcher where the problem is (file, line,
key path) and how to fix it; the CLI renders ``str(error)`` as one message.
"""

from __future__ import annotations

from pathlib import Path


class QualcodeError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` is the CLI's exit status."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key_path: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key_path = key_path
        self.fix = fix
        super().__init__(self.render())

    def location(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        return where

    def render(self) -> str:
        parts = []
        where = self.location()
        if where:
            parts.append(f"{where}: ")
        if self.key_path:
            parts.append(f"{self.key_path}: ")
        parts.append(self.message)
        text = "".join(parts)
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class CodebookError(QualcodeError):
    """The codebook file is missing, malformed or inconsistent."""


class CodebookProblems(CodebookError):
    """Several problems found in one reading of a codebook, reported together as a compiler does."""

    def __init__(self, problems: list[CodebookError]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, path=first.path, line=first.line, key_path=first.key_path, fix=first.fix)

    def render(self) -> str:
        lines = [f"{self.path + ': ' if self.path else ''}{len(self.problems)} problems in the codebook:"]
        lines += [f"  {problem.render()}" for problem in self.problems]
        return "\n".join(lines)


class SettingsError(QualcodeError):
    """qualcode.yaml is malformed."""


class TranscriptError(QualcodeError):
    """A transcript could not be read; the batch goes on without it."""


class ProjectError(QualcodeError):
    """The project folder or its database is unusable."""


class PipelineError(QualcodeError):
    """The spaCy pipeline named in the settings cannot be loaded."""


class ReviewError(QualcodeError):
    """A review filter or action that cannot be carried out."""


class SegmentGone(ReviewError):
    """A decision on a segment that a re-import replaced (its file changed) while a coder had it on screen."""

    def __init__(self, segment_ids: list[int]) -> None:
        self.segment_ids = segment_ids
        super().__init__(f"segment {', '.join(map(str, segment_ids))} was replaced when its transcript was re-imported",
                         fix="review the segment as it now reads")


class AnalysisError(QualcodeError):
    """An analysis or export option that does not fit the project."""


class QdpxError(QualcodeError):
    """A REFI-QDA archive that cannot or must not be read."""


class EvaluationError(QualcodeError):
    """Codings that cannot be compared as asked."""


class OutputError(QualcodeError):
    """A file or folder qualcode was asked to write cannot be written."""


def os_error(exc: OSError, path: str | Path | None = None, *, what: str = "write") -> QualcodeError:
    """A located message for an operating-system error while reading or writing a file: a full disk, a read-only
    file system, a missing permission, a folder where a file should be (or the other way round)."""
    import errno

    where = path if path is not None else (exc.filename or None)
    number = exc.errno
    if number in (errno.ENOSPC, errno.EDQUOT):
        return OutputError("the disk is full", path=where,
                           fix="free some space on that disk (or write elsewhere), then run the command again; no file was half-replaced")
    if number == errno.EROFS:
        return OutputError("the file system is read-only", path=where,
                           fix="write elsewhere (--output), or ask for write access; reading commands work as it is")
    if number in (errno.EACCES, errno.EPERM):
        return OutputError(f"no permission to {what} here", path=where, fix="choose a place you may write, or ask for access")
    if number == errno.EISDIR:
        return OutputError("that is a folder, not a file", path=where, fix="name a file, e.g. --output DIR/name")
    if number in (errno.ENOTDIR, errno.EEXIST):
        return OutputError("a file stands where a folder is needed", path=where, fix="name a folder, or move that file away")
    if number == errno.ENAMETOOLONG:
        return OutputError("the name is too long for this file system", path=where, fix="choose a shorter name")
    return OutputError(f"cannot {what} ({exc.strerror or exc})", path=where, fix="check the path and that the disk is working")
