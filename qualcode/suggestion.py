"""A suggested code for a segment, and the evidence that triggered it: plain data shared by
the pipeline, the models, the store and review."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qualcode.vocabulary import Source

# A learned score at or above this says "the code applies" (each model's score is shifted so that its own threshold
# lands here); rule suggestions apply when they fire.
SUGGEST_THRESHOLD = 0.5


@dataclass
class Evidence:
    term: str
    kind: str  # keyword, phrase or pattern
    start: int
    end: int
    negated: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"term": self.term, "kind": self.kind, "start": self.start, "end": self.end}
        if self.negated:
            data["negated"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Evidence":
        return cls(str(data["term"]), str(data["kind"]), int(data["start"]), int(data["end"]), bool(data.get("negated", False)))


@dataclass
class Suggestion:
    code: str
    confidence: float
    evidence: list[Evidence] = field(default_factory=list)
    source: str = Source.RULES
    # Whether the machine says "this code applies". Set by the models, whose confidence is a calibrated probability and
    # whose threshold is their own; None (rules, and rows stored before qualcode kept it): rules when they fire, else 0.5.
    applies: bool | None = None

    @property
    def says_yes(self) -> bool:
        """Whether the machine is saying 'this code applies'."""
        if self.applies is not None:
            return self.applies
        return self.source == Source.RULES or self.confidence >= SUGGEST_THRESHOLD

    def reason(self, text: str | None = None) -> str:
        """What stands behind the suggestion: its source and the rules that fired.

        Given the segment's ``text``, a token pattern is shown by the words it matched, and a keyword
        or phrase also by the words it matched when they differ from it: 'meeting' (met).
        """
        terms: list[str] = []
        for item in self.evidence:
            matched = text[item.start : item.end] if text is not None else None
            if item.kind == "pattern" and matched is not None:
                shown = f"'{matched}'"
            elif matched is not None and matched.lower() != item.term.lower():
                shown = f"'{item.term}' ({matched})"
            else:
                shown = f"'{item.term}'"
            label = shown + (" (negated)" if item.negated else "")
            if label not in terms:
                terms.append(label)
        return f"{self.source}: {', '.join(terms)}" if terms else str(self.source)
