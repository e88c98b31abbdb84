"""What a language model is asked about a segment, and how its reply is checked.

The prompt is the codebook: each code's id, label, description, include and exclude notes and examples, then the
interviewer's question before the segment, a few of the researcher's own decisions on similar segments (once there
are some), and the segment. The reply is JSON: the codes that apply, each with a confidence and the words of the
segment that justify it. Nothing in a reply is trusted: an unknown code is dropped and counted, evidence that is not
a verbatim span of the segment is dropped and counted (and the code with it: a code is suggested with its evidence or
not at all), and a reply that is not the JSON asked for is malformed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from qualcode.codebook import Code, Codebook

PROMPT_VERSION = "qualcode-llm-1"  # changes whenever the wording below changes: replies filed under another are not reused
MAX_SEGMENT_CHARS = 6000  # of a segment, a question and each example sent; interview answers are far shorter
MAX_EXAMPLE_CHARS = 600
EVIDENCE_KIND = "llm"  # an Evidence row's kind for a quote the model gave

SYSTEM = """You are a careful qualitative researcher coding interview transcripts deductively against a codebook.
For the respondent's answer you are given, decide which of the codebook's codes apply to it, following each code's
description and its use/do-not-use notes. Reply with one JSON object and nothing else:
{"codes": [{"code": "<a code id from the codebook>", "confidence": <0 to 1>, "evidence": "<the words of the answer that show it, copied exactly>"}]}
Use only code ids listed in the codebook. Copy the evidence word for word from the answer, a short phrase, never a
paraphrase. If no code applies, reply {"codes": []}."""


@dataclass
class Example:
    """One of the researcher's own decisions, shown to the model as a worked example."""

    text: str
    applied: list[str]
    rejected: list[str] = field(default_factory=list)


@dataclass
class Answer:
    """A checked reply: per code, its confidence and the (start, end) offsets of its evidence in the segment."""

    codes: dict[str, tuple[float, list[tuple[int, int]]]] = field(default_factory=dict)
    unknown: int = 0  # codes the codebook does not have (or the model was not asked about), dropped
    invented: int = 0  # evidence that is not in the segment, dropped with its code

    def to_json(self) -> dict[str, Any]:
        return {"codes": [{"code": code, "confidence": confidence, "evidence": [list(span) for span in spans]}
                          for code, (confidence, spans) in sorted(self.codes.items())],
                "unknown": self.unknown, "invented": self.invented}

    @classmethod
    def from_json(cls, data: Any) -> "Answer":
        codes = {str(item["code"]): (float(item["confidence"]), [(int(start), int(end)) for start, end in item["evidence"]])
                 for item in data["codes"]}
        return cls(codes, int(data.get("unknown", 0)), int(data.get("invented", 0)))


class Malformed(ValueError):
    """A reply that is not the JSON object asked for."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def codebook_text(codes: Iterable[Code]) -> str:
    """The codes the model decides, as it reads them."""
    lines = []
    for code in codes:
        lines.append(f"- id: {code.id}\n  label: {code.label}")
        for name, value in (("description", code.description), ("use when", code.include), ("do not use when", code.exclude)):
            if value:
                lines.append(f"  {name}: {' '.join(value.split())}")
        for example in code.examples[:3]:
            lines.append(f"  example: {json.dumps(_cut(example, MAX_EXAMPLE_CHARS), ensure_ascii=False)}")
    return "\n".join(lines)


def handled_codes(codebook: Codebook, ignore: Sequence[str]) -> list[Code]:
    """The codes the model is asked about: every code a segment can carry (leaves and manual codes), but those ignored."""
    skip = set(ignore)
    return [code for code, _depth in codebook.walk() if not code.children and code.id not in skip]


def codebook_key(codes: Sequence[Code]) -> str:
    """A digest of the codebook as the model reads it: a changed definition re-asks, another code's edit too."""
    return hashlib.blake2b(codebook_text(codes).encode("utf-8"), digest_size=12).hexdigest()


def segment_key(text: str, question: str | None) -> str:
    """A digest of what the model is asked about: the segment and the question before it."""
    return hashlib.blake2b(f"{question or ''}\x00{text}".encode("utf-8"), digest_size=16).hexdigest()


def messages(codebook_block: str, text: str, question: str | None, examples: Sequence[Example]) -> list[dict[str, str]]:
    """The chat messages for one segment."""
    parts = []
    if examples:
        shown = []
        for example in examples:
            shown.append(f"Answer: {json.dumps(_cut(example.text, MAX_EXAMPLE_CHARS), ensure_ascii=False)}\n"
                         f"Codes the researcher applied: {', '.join(example.applied) or 'none'}"
                         + (f"\nCodes the researcher rejected: {', '.join(example.rejected)}" if example.rejected else ""))
        parts.append("How the researcher coded similar answers:\n\n" + "\n\n".join(shown))
    if question:
        parts.append(f"The interviewer asked: {json.dumps(_cut(question, MAX_SEGMENT_CHARS), ensure_ascii=False)}")
    parts.append(f"The answer to code: {json.dumps(_cut(text, MAX_SEGMENT_CHARS), ensure_ascii=False)}")
    return [{"role": "system", "content": f"{SYSTEM}\n\nCodebook:\n{codebook_block}"}, {"role": "user", "content": "\n\n".join(parts)}]


def estimate_tokens(payload: Sequence[dict[str, str]]) -> int:
    """About how many tokens a request takes: four characters a token, the rule of thumb for English."""
    return sum(len(message["content"]) for message in payload) // 4 + 8 * len(payload)


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


def parse_reply(reply: str, text: str, known: set[str]) -> Answer:
    """Check a reply against the segment's ``text`` and the ``known`` code ids. ``Malformed`` when it is not the JSON
    object asked for."""
    raw = _FENCE.sub("", reply.strip())
    start, end = raw.find("{"), raw.rfind("}")
    try:
        data = json.loads(raw[start : end + 1] if start >= 0 and end > start else raw)
    except ValueError:
        raise Malformed("not JSON") from None
    items = data.get("codes") if isinstance(data, dict) else data if isinstance(data, list) else None
    if not isinstance(items, list):
        raise Malformed("no list of codes")
    answer = Answer()
    for item in items:
        if isinstance(item, str):
            item = {"code": item}
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise Malformed("a code that is not an object with a 'code'")
        code = item["code"].strip()
        if code not in known:
            answer.unknown += 1
            continue
        confidence = item.get("confidence", 0.7)
        confidence = min(1.0, max(0.0, float(confidence))) if isinstance(confidence, (int, float)) and not isinstance(confidence, bool) else 0.7
        quotes = item.get("evidence")
        quotes = [quotes] if isinstance(quotes, str) else [quote for quote in quotes if isinstance(quote, str)] if isinstance(quotes, list) else []
        spans = [span for span in (find_verbatim(quote, text) for quote in quotes if quote.strip()) if span is not None]
        if not spans:
            answer.invented += 1
            continue
        previous = answer.codes.get(code)
        if previous is not None:
            confidence, spans = max(confidence, previous[0]), sorted(set(previous[1]) | set(spans))
        answer.codes[code] = (round(confidence, 3), spans)
    return answer


def find_verbatim(quote: str, text: str) -> tuple[int, int] | None:
    """Where ``quote`` stands in ``text``, word for word: exactly, or with other spacing or case, or without the
    surrounding quotation marks and ellipses a model adds; None when it is not there (an invented quote)."""
    quote = quote.strip().strip("\"'“”‘’").strip()
    quote = re.sub(r"^(\.\.\.|…)\s*|\s*(\.\.\.|…)$", "", quote)
    if not quote:
        return None
    at = text.find(quote)
    if at >= 0:
        return at, at + len(quote)
    words = [re.escape(word) for word in quote.split()]
    match = re.search(r"\s+".join(words), text, re.I)
    return (match.start(), match.end()) if match else None
