"""Candidate themes on paper and into the codebook: ``candidates.md`` to read, ``candidates.yaml`` (a codebook
fragment) to add from, and the merge that adds chosen candidates to ``codebook.yaml`` as text, so the file's comments,
order and layout stay as the researcher wrote them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Sequence

import yaml

from qualcode.codebook import ID_PATTERN, Codebook, parse_codebook
from qualcode.errors import CodebookError, ProjectError
from qualcode.exchange.export import write_atomic
from qualcode.project import Project
from qualcode.suggest.discover import Candidate, Discovery

QUOTE_CHARS = 400


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "theme"
    if not base[0].isalpha():
        base = f"theme-{base}"
    slug, number = base, 2
    while slug in taken or not ID_PATTERN.match(slug):
        slug = f"{base}-{number}"
        number += 1
    taken.add(slug)
    return slug


def _spread(candidate: Candidate) -> str:
    return ", ".join(f"{group} {segments}" for group, (segments, _transcripts) in candidate.spread.items() if segments)


def _title(candidate: Candidate) -> str:
    """A code's label: the language model's name, else the group's most distinctive phrase (or word)."""
    return candidate.label or (candidate.phrases[:1] or candidate.keywords[:1] or [candidate.name])[0]


def _phrases_in_text(candidate: Candidate) -> list[str]:
    """The candidate's phrases that stand word for word in one of its quotes (a phrase is matched as written)."""
    return [phrase for phrase in candidate.phrases
            if sum(1 for quote in candidate.quotes if re.search(r"\b" + r"\W+".join(map(re.escape, phrase.split())) + r"\b", quote.text, re.I)) >= 1]


def candidates_yaml(discovery: Discovery, codebook: Codebook) -> str:
    """A codebook fragment, one code per candidate, numbered in comments as ``codebook --add --only`` takes them."""
    taken = set(codebook.codes)
    where = "every respondent segment" if discovery.everything else "the segments no code covers"
    lines = [
        f"# Candidate themes found by 'qualcode discover' on {date.today().isoformat()} among {where} ({discovery.considered}).",
        "# Add the ones worth keeping to codebook.yaml:  qualcode codebook --add exports/candidates.yaml --only 1,3",
        "# Each needs a description (what it means, when to use it, when not) before it is a good code: write one after adding it.",
        "codes:",
    ]
    for candidate in discovery.candidates:
        slug = _slug(candidate.label or (candidate.phrases[:1] or candidate.keywords[:1] or ["theme"])[0], taken)
        lines.append(f"  # {candidate.number}. {candidate.name}: {candidate.size} segments in {candidate.transcripts} transcripts"
                     + (f" ({_spread(candidate)})" if _spread(candidate) else ""))
        lines.append(f"  - id: {slug}")
        lines.append(f"    label: {json.dumps(_title(candidate)[:1].upper() + _title(candidate)[1:], ensure_ascii=False)}")
        if candidate.description:
            lines.append(f"    description: {json.dumps(candidate.description, ensure_ascii=False)}")
        keywords = [word for word in candidate.keywords if not any(word in phrase.split() for phrase in candidate.phrases)][:5]
        phrases = _phrases_in_text(candidate)
        if keywords or not phrases:
            lines.append(f"    keywords: {json.dumps(keywords or candidate.keywords[:3], ensure_ascii=False)}")
        if phrases:
            lines.append(f"    phrases: {json.dumps(phrases, ensure_ascii=False)}")
        lines.append("    examples:")
        for quote in candidate.quotes[:3]:
            lines.append(f"      - {json.dumps(' '.join(quote.text.split())[:QUOTE_CHARS], ensure_ascii=False)}")
    if not discovery.candidates:
        lines[-1] = "codes: []"
    return "\n".join(lines) + "\n"


def candidates_markdown(discovery: Discovery) -> str:
    where = "every respondent segment" if discovery.everything else "the respondent segments no code covers"
    out = ["# Candidate themes\n",
           f"Found by `qualcode discover` on {date.today().isoformat()} among {where}: {discovery.considered} segments, "
           f"{len(discovery.candidates)} groups, {discovery.noise} segments in none. Each group is named by its most distinctive "
           f"words; its quotes are those nearest its centre. Add one to the codebook with "
           f"`qualcode codebook --add exports/candidates.yaml --only N`.\n"]
    for candidate in discovery.candidates:
        out.append(f"## {candidate.number}. {_title(candidate)}\n")
        out.append(f"*Most distinctive words:* {candidate.name}\n")
        if candidate.description:
            out.append(f"{candidate.description}\n")
        spread = "; ".join(f"{group}: {segments} segments in {transcripts} transcripts" for group, (segments, transcripts)
                           in candidate.spread.items() if segments)
        out.append(f"{candidate.size} segments in {candidate.transcripts} transcripts ({spread}); how alike they are: "
                   f"{candidate.cohesion:.2f}. Keywords: {', '.join(candidate.keywords)}"
                   + (f". Phrases: {', '.join(candidate.phrases)}" if candidate.phrases else "") + ".\n")
        for quote in candidate.quotes:
            text = " ".join(quote.text.split())
            out.append(f"> {text[:QUOTE_CHARS] + ('…' if len(text) > QUOTE_CHARS else '')}\n>\n> — {quote.transcript}, segment {quote.segment}\n")
    return "\n".join(out)


@dataclass
class WrittenCandidates:
    markdown: Path
    fragment: Path


def write_candidates(project: Project, discovery: Discovery, folder: Path | None = None) -> WrittenCandidates:
    target = folder or project.exports_dir
    fragment = candidates_yaml(discovery, project.codebook)
    parse_codebook(fragment.replace("codes: []", "codes: [{id: placeholder, label: P, manual: true}]"))  # it loads as written
    markdown, yaml_path = target / "candidates.md", target / "candidates.yaml"
    write_atomic(markdown, candidates_markdown(discovery).encode("utf-8"))
    write_atomic(yaml_path, fragment.encode("utf-8"))
    return WrittenCandidates(markdown, yaml_path)


# -- adding candidates to the codebook -------------------------------------------------------------


@dataclass
class Added:
    codes: list[str]
    path: Path


def add_codes(project: Project, fragment: str | Path, *, only: Sequence[int] | None = None) -> Added:
    """Add the fragment's codes (``only``: their numbers, 1-based, in the fragment's order) to the end of the codebook's
    ``codes:`` list, as text: comments, order and layout of codebook.yaml stay as they were. A clash (an id the codebook
    has) is refused with the fragment's line; the result must load as a codebook before it is written."""
    path = Path(fragment)
    if not path.is_absolute() and not path.exists() and (project.root / path).exists():
        path = project.root / path  # named as the project sees it (exports/candidates.yaml), from elsewhere
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"cannot read the codes to add ({exc.__class__.__name__})", path=path, fix="give the path of candidates.yaml") from None
    parse_codebook(text, path=path)  # every problem of the fragment, located in it
    items = _code_items(text, path)
    chosen = list(range(1, len(items) + 1)) if only is None else list(only)
    for number in chosen:
        if not 1 <= number <= len(items):
            raise ProjectError(f"there is no code number {number} in the file (it has {len(items)})", path=path,
                               fix=f"choose from 1 to {len(items)}, as numbered in its comments")
    codebook = project.codebook
    target = project.codebook_path
    original = target.read_text(encoding="utf-8-sig")
    added = []
    for number in chosen:
        code_id, line, _start, _end = items[number - 1]
        if code_id in codebook.codes:
            existing = codebook.codes[code_id]
            raise CodebookError(f"'{code_id}' is a code of codebook.yaml already (line {existing.line})", path=path, line=line,
                                key_path=f"codes[{number - 1}].id", fix="give the candidate another id in this file, or leave it out of --only")
        if code_id in added:
            raise CodebookError(f"'{code_id}' is chosen twice", path=path, line=line, key_path=f"codes[{number - 1}].id",
                                fix="choose each number once")
        added.append(code_id)
    merged = _append(original, target, [_reindented(text, items[number - 1]) for number in chosen])
    parse_codebook(merged, path=target)  # still a codebook (a child reference, a duplicate label: located in codebook.yaml)
    write_atomic(target, merged.encode("utf-8"))
    return Added(added, target)


def _code_items(text: str, path: Path) -> list[tuple[str, int, int, int]]:
    """Per top-level code of a codebook text: (id, line, first line index, end line index), comments above it included."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    codes = next((value for key, value in root.value if key.value == "codes"), None) if isinstance(root, yaml.MappingNode) else None
    if not isinstance(codes, yaml.SequenceNode) or codes.flow_style:
        raise ProjectError("no block list of codes under 'codes:'", path=path, fix="write each code as a '- id: ...' item under 'codes:'")
    lines = text.splitlines()
    found = []
    for index, item in enumerate(codes.value):
        if not isinstance(item, yaml.MappingNode):
            continue
        code_id = next((value.value for key, value in item.value if key.value == "id"), "")
        first = item.start_mark.line
        while first > 0 and lines[first - 1].strip().startswith("#"):
            first -= 1
        end = codes.value[index + 1].start_mark.line if index + 1 < len(codes.value) else codes.end_mark.line
        if index + 1 < len(codes.value):
            while end > first and lines[end - 1].strip().startswith("#"):
                end -= 1
        found.append((str(code_id), item.start_mark.line + 1, first, end))
    return found


def _reindented(text: str, item: tuple[str, int, int, int]) -> list[str]:
    lines = text.splitlines()[item[2] : item[3]]
    while lines and not lines[-1].strip():
        lines.pop()
    dash = next(line.index("-") for line in lines if line.lstrip().startswith("-"))
    return [line[dash:] if line[:dash].strip() == "" else line.lstrip() for line in lines]


def _append(original: str, path: Path, blocks: list[list[str]]) -> str:
    """The codebook text with ``blocks`` (lines at column 0) added after the last item of its ``codes:`` list."""
    items = _code_items(original, path)
    if not items:
        raise ProjectError("codebook.yaml has no code to add after", path=path, fix="add one code by hand first")
    lines = original.splitlines()
    last = items[-1]
    dash_line = next(line for line in lines[last[2] : last[3]] if line.lstrip().startswith("-"))
    indent = " " * dash_line.index("-")
    end = last[3]
    while end > last[2] and not lines[end - 1].strip():
        end -= 1
    added = [indent + line if line else line for block in blocks for line in block]
    merged = lines[:end] + added + lines[end:]
    return "\n".join(merged) + ("\n" if original.endswith("\n") or not original else "")
