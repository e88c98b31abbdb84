"""The closed vocabularies of qualcode: verdicts, decision marks, sources, statuses, orders.

Each is a ``StrEnum`` so that values compare equal to the strings stored in the
database and shown to users, while code names them instead of repeating literals.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """A coder's verdict on one code for one segment."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ADDED = "added"

    @property
    def applies(self) -> bool:
        """Whether the coder says the code applies (accepted a suggestion, or added the code)."""
        return self is not Verdict.REJECTED


class Mark(StrEnum):
    """A decision row about the whole segment rather than one code."""

    REVIEWED = "reviewed"  # the coder is done with the segment
    NOTE = "note"  # a memo
    UNDO = "undo"  # cancels the row it names


class Method(StrEnum):
    """How a decision was made."""

    MANUAL = "manual"  # one key in review
    BATCH = "batch"  # review --accept-above
    IMPORT = "import"  # import-qdpx


class Source(StrEnum):
    """What stands behind a suggestion."""

    RULES = "rules"
    MODEL = "model"
    BOTH = "both"
    LLM = "llm"  # a language model (its quotes, and any rule evidence beside them)


class Status(StrEnum):
    """Which codings count in an analysis or export."""

    CONFIRMED = "confirmed"  # accepted or added by a coder
    SUGGESTED = "suggested"  # machine suggestions nobody has decided on
    ALL = "all"


class ReviewOrder(StrEnum):
    TRANSCRIPT = "transcript"
    UNCERTAIN = "uncertain"
    ACTIVE = "active"


class ExportFormat(StrEnum):
    XLSX = "xlsx"
    CSV = "csv"
    MD = "md"
    QDPX = "qdpx"


class Paper(StrEnum):
    """The paper a workbook prints on."""

    A4 = "a4"
    LETTER = "letter"


# Where Letter is the paper in the shops (the rest of the world prints on A4).
LETTER_TERRITORIES = frozenset({"US", "CA", "MX", "PH", "CL", "CO", "VE", "CR", "GT", "PR", "DO", "SV", "NI", "PA"})


def locale_paper(environ: dict[str, str]) -> "Paper":
    """The paper the user's locale implies: LC_PAPER, else LC_ALL, else LANG (en_US.UTF-8: Letter); A4 otherwise."""
    for name in ("LC_ALL", "LC_PAPER", "LANG"):
        value = environ.get(name, "")
        if value and value not in ("C", "POSIX", "C.UTF-8"):
            territory = value.split(".")[0].partition("_")[2].upper()
            return Paper.LETTER if territory in LETTER_TERRITORIES else Paper.A4
    return Paper.A4


class Role(StrEnum):
    """What a code's model does beside the code's rules."""

    DECIDES = "decides"  # it decides the code everywhere: where the rules fire it may say no
    ADDS = "adds"  # the rules' yes stands; the model only adds segments the rules missed


class Speaker(StrEnum):
    """What suggests a code after a model run."""

    MODEL = "model"  # its model: it beat the rules by more than the margin, and reached the floor
    RULES = "rules"  # its rules: the model did not beat them by enough, is still learning, or has too few examples
    NOTHING = "nothing"  # a code without rules (manual) whose model does not speak yet: only coders apply it


def choices(vocabulary: type[StrEnum]) -> str:
    """The values of a vocabulary as a user reads them: 'a, b, c'."""
    return ", ".join(member.value for member in vocabulary)


class VectorModel(StrEnum):
    """Which sentence vectors the pipeline computes (``vectors:`` in qualcode.yaml)."""

    NONE = "none"
    MINILM_STATIC = "minilm-static"  # all-MiniLM-L6-v2 distilled to a static token table, shipped in qualcode/data


DEFAULT_VECTORS = VectorModel.MINILM_STATIC


class ContextFeatures(StrEnum):
    """Which neighbours of a segment the models also read, as down-weighted sentence vectors (``context:``)."""

    NONE = "none"
    QUESTION = "question"  # the interviewer's turn before the segment
    PREVIOUS = "previous"  # the respondent segment before it
    BOTH = "both"

    @property
    def question(self) -> bool:
        return self in (ContextFeatures.QUESTION, ContextFeatures.BOTH)

    @property
    def previous(self) -> bool:
        return self in (ContextFeatures.PREVIOUS, ContextFeatures.BOTH)
