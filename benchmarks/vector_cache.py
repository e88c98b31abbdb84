"""What the sentence-vector cache and context features cost and save in `qualcode train`, measured in one run.

Builds a project of about 200,000 words from the sample transcripts (shuffled copies, as
`throughput.py` does, with the words of each respondent turn shuffled too, so that no two
segments share a text, as in real interviews), codes it, records a review of every other segment (the rules' suggestions
accepted, one in ten flipped), then times:

1. `train` with an empty vector cache (every vector computed, then filed): the baseline;
2. `train` again, the cache full (vectors read); each the median of three runs;
3. the vector stage alone, empty cache against full;
4. `train` with `context: both` (each segment's question and previous segment read from the cache);
5. the cache's size.

Run: .venv/bin/python benchmarks/vector_cache.py [--words 200000]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import build_corpus  # noqa: E402

from qualcode.project import Project  # noqa: E402
from qualcode.run.coding import code  # noqa: E402
from qualcode.store import Entry  # noqa: E402
from qualcode.suggest.spec import pipeline_for  # noqa: E402
from qualcode.suggest.training import train  # noqa: E402
from qualcode.suggest.vector_cache import cached_vectors  # noqa: E402
from qualcode.suggest.vectors import load_vectors  # noqa: E402


def distinct(folder: Path) -> None:
    rng = random.Random(5)
    for path in sorted(folder.glob("*.txt")):
        front, _sep, body = path.read_text(encoding="utf-8").partition("\n---\n")
        paragraphs = body.split("\n\n")
        for index, paragraph in enumerate(paragraphs):
            label = re.match(r"([A-Z][\w ]{0,30}): ", paragraph)
            if label and label.group(1).startswith("Interviewer"):
                continue  # the topic guide's questions stay as asked
            head = label.group(0) if label else ""
            words = paragraph[len(head):].split()
            rng.shuffle(words)
            paragraphs[index] = head + " ".join(words)
        path.write_text(front + "\n---\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")


def review_half(folder: Path) -> int:
    rng = random.Random(3)
    with Project.open(folder) as project:
        store = project.store
        suggested: dict[int, set[str]] = {}
        for item in store.suggestions(evidence=False):
            suggested.setdefault(item.segment_id, set()).add(item.suggestion.code)
        entries = []
        for row in store.codable_segments()[::2]:
            for code_id in sorted(suggested.get(row.id, ())):
                entries.append(Entry(row.id, code_id, "rejected" if rng.random() < 0.1 else "accepted"))
            entries.append(Entry(row.id, None, "reviewed"))
        store.record(entries, coder="bench")
        return len(entries)


def timed_train(folder: Path) -> tuple[float, int]:
    with Project.open(folder) as project:
        started = time.perf_counter()
        result = train(project)
        return time.perf_counter() - started, result.examples


def clear_cache(folder: Path) -> None:
    with Project.open(folder) as project:
        project.store.prune_vectors(load_vectors(project.settings.vectors).model_id, ())


def vector_stage(folder: Path) -> float:
    with Project.open(folder) as project:
        texts = [row.text for row in project.store.codable_segments()]
        nlp = pipeline_for(project.codebook, project.settings)
        started = time.perf_counter()
        cached_vectors(project.store, nlp, project.settings.vectors, texts)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        _texts, words = build_corpus(folder / "transcripts", args.words)
        distinct(folder / "transcripts")
        (folder / "codebook.yaml").write_text((REPO / "codebook.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        (folder / "qualcode.yaml").write_text("retrain_after: 0\n", encoding="utf-8")
        with Project.open(folder) as project:
            coded = code(project)
        decisions = review_half(folder)
        print(f"Project: {words:,} words, {coded.segments:,} segments, {decisions:,} decisions on every other segment")
        timed_train(folder)  # the pipeline built and the vector table read once, so neither timed run pays for them
        colds, warms = [], []
        for _repeat in range(3):  # the median of three: one run is at the mercy of the machine
            clear_cache(folder)
            seconds, examples = timed_train(folder)
            colds.append(seconds)
            warms.append(timed_train(folder)[0])
        cold, warm = statistics.median(colds), statistics.median(warms)
        print(f"train, empty cache (baseline): {cold:6.2f} s  ({examples:,} reviewed segments, then the rest re-scored)")
        print(f"train, full cache:             {warm:6.2f} s  x{warm / cold:.3f} of the baseline")
        clear_cache(folder)
        empty = vector_stage(folder)
        full = vector_stage(folder)
        print(f"vector stage, all segments:    {empty:6.2f} s empty, {full:6.2f} s full (x{full / empty:.3f})")
        (folder / "qualcode.yaml").write_text("retrain_after: 0\ncontext: both\n", encoding="utf-8")
        timed_train(folder)  # the questions' vectors filed
        context = statistics.median(timed_train(folder)[0] for _repeat in range(3))
        print(f"train, context: both:          {context:6.2f} s  x{context / warm:.3f} of the full-cache run without context")
        with Project.open(folder) as project:
            from qualcode.suggest.vectors import text_key

            texts = {row.text for transcript in project.store.transcripts() for row in project.store.segments(transcript)}
            rows = project.store.cached_vectors(load_vectors(project.settings.vectors).model_id, [text_key(text) for text in texts])
            size = (folder / ".qualcode" / "project.db").stat().st_size
        print(f"cache: {len(rows):,} vectors of {len(texts):,} distinct segment texts, "
              f"{sum(map(len, rows.values())) / 1e6:.1f} MB of a {size / 1e6:.1f} MB database")


if __name__ == "__main__":
    main()
