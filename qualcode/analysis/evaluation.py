"""How good are the codings? Agreement between coders, the machine and gold files.

The unit is the segment: two sources agree on a segment and code when both apply the code
or both do not. Only segments both sources cover count: a coder covers the segments they
reviewed (or decided on), the machine covers every respondent segment, and a gold file
covers every respondent segment of the transcripts it names. Gold selections (character
ranges) map onto the segments they overlap.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from qualcode.codebook import Codebook
from qualcode.errors import EvaluationError
from qualcode.ingest.refiqda import read_qdpx
from qualcode.project import Project, one_snapshot
from qualcode.statistics import cohen_kappa, krippendorff_alpha_nominal, precision_recall_f1
from qualcode.store import Store
from qualcode.vocabulary import Verdict

# -- sources ------------------------------------------------------------------------------


@dataclass
class CodingSource:
    """One source of codings: the segments it covers and the (segment, code) pairs it applies."""

    label: str
    covered: set[int]
    applied: set[tuple[int, str]]
    evidence: dict[tuple[int, str], str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def coder_source(store: Store, coder: str) -> CodingSource:
    states = store.coder_states(coder)
    if not states:
        known = ", ".join(store.coders()) or "none yet"
        raise EvaluationError(f"no decisions by coder '{coder}'", fix=f"coders in this project: {known}")
    covered = {segment_id for segment_id, state in states.items() if state.reviewed or state.codes}
    applied = {(segment_id, code) for segment_id, state in states.items() for code, verdict in state.codes.items() if Verdict(verdict).applies}
    return CodingSource(f"coder:{coder}", covered, applied)


def machine_source(store: Store, *, min_confidence: float = 0.0) -> CodingSource:
    covered = {row.id for row in store.codable_segments()}
    applied = set()
    evidence = {}
    for stored in store.suggestions():
        if stored.confidence >= min_confidence and stored.suggestion.says_yes:
            applied.add((stored.segment_id, stored.code))
            terms = sorted({item.term for item in stored.suggestion.evidence})
            evidence[(stored.segment_id, stored.code)] = f"{stored.source} {stored.confidence:.2f}: " + ", ".join(terms)
    label = "machine" + (f" (>= {min_confidence:g})" if min_confidence else "")
    return CodingSource(label, covered, applied, evidence)


def _code_lookup(codebook: Codebook) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for code in codebook.codes.values():
        for key in (code.id, code.label.lower(), re.sub(r"[^a-z0-9]+", "-", code.label.lower()).strip("-")):
            lookup.setdefault(key, code.id)
    return lookup


def gold_source(store: Store, codebook: Codebook, path: str | Path) -> CodingSource:
    """A gold standard from a CSV (transcript,start,end,code or transcript,text,code) or a .qdpx."""
    path = Path(path)
    if not path.exists():
        raise EvaluationError("gold file not found", path=path)
    if not path.is_file():
        raise EvaluationError("the gold file is a folder or a device, not a file", path=path, fix="name a .csv or .qdpx file")
    if path.stat().st_size > MAX_GOLD_BYTES:
        raise EvaluationError(f"the gold file is larger than {MAX_GOLD_BYTES // 1_000_000} MB", path=path,
                              fix="split it by transcript, or check that it is the file you meant")
    if path.suffix.lower() == ".qdpx":
        ranges, warnings = _gold_ranges_from_qdpx(path)
    else:
        ranges, warnings = _gold_ranges_from_csv(store, path)
    lookup = _code_lookup(codebook)
    segments = {tid: store.codable_segments(tid) for tid in store.transcripts()}
    covered: set[int] = set()
    applied: set[tuple[int, str]] = set()
    unknown_codes: Counter = Counter()
    unknown_transcripts: set[str] = set()
    unplaced = 0
    for transcript, start, end, raw_code in ranges:
        if transcript not in segments:
            unknown_transcripts.add(transcript)
            continue
        covered.update(row.id for row in segments[transcript])
        code = lookup.get(raw_code.strip().lower()) or lookup.get(re.sub(r"[^a-z0-9]+", "-", raw_code.lower()).strip("-"))
        if code is None:
            unknown_codes[raw_code] += 1
            continue
        overlapping = [row.id for row in segments[transcript] if row.start < end and start < row.end]
        if not overlapping:
            unplaced += 1
        applied.update((segment_id, code) for segment_id in overlapping)
    for name, count in unknown_codes.most_common():
        warnings.append(f"{path}: code '{name}' is not in the codebook ({count} rows ignored)")
    if unknown_transcripts:
        warnings.append(f"{path}: transcripts not in the project: {', '.join(sorted(unknown_transcripts)[:10])}")
    if unplaced:
        warnings.append(f"{path}: {unplaced} gold ranges overlap no respondent segment")
    if not covered:
        missing = [warning for warning in warnings if ": quote not found in " in warning]
        if missing and not ranges:
            raise EvaluationError(f"none of the gold file's {len(missing)} quotes was found in the transcript it names", path=path,
                                  fix="copy each quote from the transcript as it is (spaces and line breaks may differ); the first: "
                                      + missing[0].split(": ", 1)[1])
        raise EvaluationError("the gold file covers none of the project's transcripts", path=path, fix="check its transcript column holds ids such as lead-01")
    return CodingSource(f"gold:{path.name}", covered, applied, warnings=warnings)


MAX_GOLD_BYTES = 200_000_000
MAX_GOLD_FIELD = 1_000_000  # characters in one cell: a quote longer than any segment is a broken file


def _gold_ranges_from_csv(store: Store, path: Path) -> tuple[list[tuple[str, int, int, str]], list[str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EvaluationError("gold CSV is not UTF-8", path=path, fix="save it as UTF-8") from None
    if "\0" in text:
        raise EvaluationError("the gold CSV holds NUL bytes: it is not a text file", path=path, fix="export it again as CSV (UTF-8)")
    reader = csv.DictReader(io.StringIO(text))
    limit = csv.field_size_limit(MAX_GOLD_FIELD)
    try:
        return _read_gold_rows(store, path, reader)
    except csv.Error as exc:
        raise EvaluationError(f"the gold CSV cannot be read ({exc})", path=path, line=reader.line_num,
                              fix=f"check the quoting on that line; a cell holds at most {MAX_GOLD_FIELD:,} characters") from None
    finally:
        csv.field_size_limit(limit)


def _read_gold_rows(store: Store, path: Path, reader: csv.DictReader) -> tuple[list[tuple[str, int, int, str]], list[str]]:
    columns = {name.strip().lower(): name for name in (reader.fieldnames or [])}
    if "transcript" not in columns or "code" not in columns or not ({"start", "end"} <= set(columns) or "text" in columns):
        raise EvaluationError(
            f"gold CSV columns are {', '.join(reader.fieldnames or []) or 'missing'}",
            path=path,
            line=1,
            fix="use 'transcript,start,end,code' or 'transcript,text,code'",
        )
    ranges = []
    warnings = []
    texts: dict[str, str | None] = {}
    for line, row in enumerate(reader, start=2):
        transcript = (row[columns["transcript"]] or "").strip()
        code = (row[columns["code"]] or "").strip()
        if not transcript or not code:
            warnings.append(f"{path}:{line}: row without transcript or code skipped")
            continue
        if {"start", "end"} <= set(columns) and (row[columns["start"]] or "").strip():
            try:
                start, end = int(row[columns["start"]] or ""), int(row[columns["end"]] or "")
            except ValueError:
                raise EvaluationError("start and end must be whole numbers", path=path, line=line,
                                      fix="give character offsets such as 120,245 (or a 'text' column with the quote)") from None
            if not 0 <= start < end:
                warnings.append(f"{path}:{line}: range {start}-{end} is empty or negative; row skipped")
                continue
        else:
            if transcript not in texts:
                try:
                    texts[transcript] = store.transcript_text(transcript)
                except KeyError:
                    texts[transcript] = None
            source = texts[transcript]
            quote = (row.get(columns.get("text", ""), "") or "").strip()
            if source is None:
                ranges.append((transcript, 0, 0, code))
                continue
            found = _find_quote(source, quote)
            if found is None:
                warnings.append(f"{path}:{line}: quote not found in {transcript}: {quote[:60]!r}")
                continue
            start, end = found
        ranges.append((transcript, start, end, code))
    return ranges, warnings


def _find_quote(text: str, quote: str) -> tuple[int, int] | None:
    if not quote:
        return None
    index = text.find(quote)
    if index >= 0:
        return index, index + len(quote)
    pattern = r"\s+".join(re.escape(word) for word in quote.split())
    match = re.search(pattern, text)
    return (match.start(), match.end()) if match else None


def _gold_ranges_from_qdpx(path: Path) -> tuple[list[tuple[str, int, int, str]], list[str]]:
    document = read_qdpx(path)
    names = document.code_names()
    ranges = []
    for source in document.sources:
        for selection in source.selections:
            start, end = selection.start or 0, selection.end or 0
            for coding in selection.codings:
                ranges.append((source.name, start, end, names.get(coding.code_guid, "")))
    return ranges, []


def resolve_source(spec: str, store: Store, codebook: Codebook, *, min_confidence: float = 0.0) -> CodingSource:
    if spec == "machine":
        return machine_source(store, min_confidence=min_confidence)
    kind, _, value = spec.partition(":")
    if kind == "coder" and value:
        return coder_source(store, value)
    if kind == "gold" and value:
        return gold_source(store, codebook, value)
    raise EvaluationError(f"unknown source '{spec}'", fix="use coder:NAME, machine, llm or gold:FILE")


# -- reports ------------------------------------------------------------------------------


@dataclass
class CodeAgreement:
    code: str
    units: int
    both: int
    only_a: int
    only_b: int
    neither: int
    kappa: float | None
    percent: float
    precision: float | None
    recall: float | None
    f1: float | None
    alpha: float | None = None


@dataclass
class Disagreement:
    segment_id: int
    transcript: str
    segment: int
    code: str
    values: dict[str, bool]
    text: str
    evidence: str = ""


@dataclass
class AgreementReport:
    sources: list[str]
    units: int
    codes: list[CodeAgreement]
    overall: CodeAgreement
    macro_kappa: float | None
    macro_f1: float | None
    alpha: float | None
    disagreements: list[Disagreement]
    warnings: list[str]


def compare(store: Store, codebook: Codebook, sources: list[CodingSource], *, codes: Iterable[str] | None = None) -> AgreementReport:
    """Per-code and overall agreement of the sources over the segments they all cover (B is scored against A)."""
    if len(sources) < 2:
        raise EvaluationError("agreement needs two or more sources", fix="e.g. qualcode agreement coder:ann coder:bob")
    units = sorted(set.intersection(*(source.covered for source in sources)))
    if not units:
        raise EvaluationError(
            f"{' and '.join(source.label for source in sources)} have no segment in common",
            fix="review some of the same segments with both coders, or check the gold file's transcript ids",
        )
    unit_set = set(units)
    seen_codes = {code for source in sources for (segment_id, code) in source.applied if segment_id in unit_set}
    chosen = [code.id for code, _depth in codebook.walk() if code.id in seen_codes] if codes is None else list(codes)
    chosen += sorted(code for code in seen_codes if code not in codebook and codes is None)
    a, b = sources[0], sources[1]
    per_code = []
    all_a: list[int] = []
    all_b: list[int] = []
    for code in chosen:
        va = [int((segment_id, code) in a.applied) for segment_id in units]
        vb = [int((segment_id, code) in b.applied) for segment_id in units]
        all_a += va
        all_b += vb
        entry = _agreement_row(code, va, vb)
        if len(sources) > 2:
            entry.alpha = krippendorff_alpha_nominal([[int((segment_id, code) in source.applied) for source in sources] for segment_id in units])
        per_code.append(entry)
    overall = _agreement_row("(all codes)", all_a, all_b)
    if len(sources) > 2:
        overall.alpha = krippendorff_alpha_nominal(
            [[int((segment_id, code) in source.applied) for source in sources] for code in chosen for segment_id in units]
        )
    kappas = [row.kappa for row in per_code if row.kappa is not None]
    f1s = [row.f1 for row in per_code if row.f1 is not None]
    rows = {row.id: row for row in store.codable_segments()}
    numbers = store.segment_numbers()
    disagreements = []
    for segment_id in units:
        for code in chosen:
            values = {source.label: (segment_id, code) in source.applied for source in sources}
            if len(set(values.values())) > 1:
                row = rows[segment_id]
                evidence = next((source.evidence[(segment_id, code)] for source in sources if (segment_id, code) in source.evidence), "")
                disagreements.append(Disagreement(segment_id, row.transcript_id, numbers[segment_id], code, values, row.text, evidence))
    return AgreementReport(
        sources=[source.label for source in sources],
        units=len(units),
        codes=per_code,
        overall=overall,
        macro_kappa=sum(kappas) / len(kappas) if kappas else None,
        macro_f1=sum(f1s) / len(f1s) if f1s else None,
        alpha=overall.alpha,
        disagreements=disagreements,
        warnings=[warning for source in sources for warning in source.warnings],
    )


def _agreement_row(code: str, va: list[int], vb: list[int]) -> CodeAgreement:
    both = sum(1 for x, y in zip(va, vb) if x and y)
    only_a = sum(1 for x, y in zip(va, vb) if x and not y)
    only_b = sum(1 for x, y in zip(va, vb) if y and not x)
    neither = len(va) - both - only_a - only_b
    precision, recall, f1 = precision_recall_f1(va, vb)
    percent = 100.0 * (both + neither) / len(va) if va else 0.0
    return CodeAgreement(code, len(va), both, only_a, only_b, neither, cohen_kappa(va, vb), percent, precision, recall, f1)


@one_snapshot
def agreement(project: Project, *, sources: Sequence[str], min_confidence: float = 0.0,
              given: Mapping[str, CodingSource] | None = None) -> AgreementReport:
    """Agreement between sources named as coder:NAME, machine or gold:FILE, or resolved already (``given``, by name:
    the language model's answers, 'llm', are read by the pipeline's stage)."""
    store, codebook = project.store, project.codebook
    given = given or {}
    resolved = [given[spec] if spec in given else resolve_source(spec, store, codebook, min_confidence=min_confidence) for spec in sources]
    for source in resolved:
        if source.warnings and source.label.startswith("llm"):
            raise EvaluationError(source.warnings[0], fix="set up the 'llm:' block in qualcode.yaml, then run 'qualcode code'")
    return compare(store, codebook, resolved)


@dataclass
class EvaluationReport:
    agreement: AgreementReport
    false_positives: dict[str, list[Disagreement]]
    false_negatives: dict[str, list[Disagreement]]


@one_snapshot
def evaluate(project: Project, *, gold: str | Path, min_confidence: float = 0.0, top: int = 5) -> EvaluationReport:
    """The codebook developer's loop: current suggestions against a gold file, with the worst misses per code."""
    store, codebook = project.store, project.codebook
    reference = gold_source(store, codebook, gold)
    machine = machine_source(store, min_confidence=min_confidence)
    report = compare(store, codebook, [reference, machine])
    false_positives: dict[str, list[Disagreement]] = defaultdict(list)
    false_negatives: dict[str, list[Disagreement]] = defaultdict(list)
    for item in report.disagreements:
        if item.values[machine.label] and len(false_positives[item.code]) < top:
            false_positives[item.code].append(item)
        elif item.values[reference.label] and len(false_negatives[item.code]) < top:
            false_negatives[item.code].append(item)
    return EvaluationReport(report, dict(false_positives), dict(false_negatives))


def report_rows(report: AgreementReport) -> tuple[list[str], list[list[object]]]:
    """The per-code table as rows, for CSV."""
    header = ["code", "units", "both", "only_a", "only_b", "neither", "kappa", "percent_agreement", "precision", "recall", "f1", "alpha"]
    rows = []
    for row in [*report.codes, report.overall]:
        rows.append([row.code, row.units, row.both, row.only_a, row.only_b, row.neither, _round(row.kappa), round(row.percent, 2),
                     _round(row.precision), _round(row.recall), _round(row.f1), _round(row.alpha)])
    return header, rows


def disagreement_rows(report: AgreementReport) -> tuple[list[str], list[list[object]]]:
    """The segments where the sources differ, for CSV: 1 where a source applies the code, 0 where not."""
    header = ["transcript", "segment", "code", *report.sources, "evidence", "text"]
    rows: list[list[object]] = [
        [item.transcript, item.segment, item.code, *[int(item.values[source]) for source in report.sources], item.evidence, item.text]
        for item in report.disagreements
    ]
    return header, rows


def _round(value: float | None) -> object:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 4)
