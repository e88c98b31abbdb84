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


class AnalysisError(QualcodeError):
    """An analysis or export option that does not fit the project."""


class QdpxError(QualcodeError):
    """A REFI-QDA archive that cannot or must not be read."""


class EvaluationError(QualcodeError):
    """Codings that cannot be compared as asked."""
