"""Throughput of `qualcode code` against the bare spaCy tokenizer, measured in one run.

Builds a synthetic corpus of about one million words from the sample transcripts (their
questions, and answers recombined from their sentences with a long tail of words found in no
other interview, so that no answer repeats more than by chance: a cache keyed by a text gains
what it would on real interviews, and the run says how much a per-word cache can), then:

1. the bare tokenizer of spacy.blank("en") over the same texts: the practical ceiling;
2. the tokenizer plus the lookup lemmatizer, for reference;
3. `qualcode code` end to end (read, segment, suggest, write SQLite), in one process;
4. the same with the default worker setting (both cores when the batch is large);
5. the same again with `vectors: none` (no sentence-vector component), the cost of the vectors;
6. a second run over the unchanged folder.

Run: .venv/bin/python benchmarks/throughput.py [--words 1000000]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qualcode.ingest.transcripts import discover, read_transcript  # noqa: E402
from qualcode.project import Project  # noqa: E402
from qualcode.run.coding import code  # noqa: E402
from qualcode.vocabulary import DEFAULT_VECTORS  # noqa: E402

ROLES = ("lead", "partner", "stakeholder")


SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“])")
TURN = re.compile(r"^\s*(?:\*\*)?([^\n:]{1,40}?)(?:\*\*)?\s*:\s+(.*)$", re.S)
RARE_SHARE = 0.03  # of the words: names, places, typos and jargon no other interview shares (a real corpus's long tail)


def _sample_turns() -> tuple[list[str], list[str], list[int]]:
    """The sample interviews' questions, their answers' sentences, and how many sentences their answers have."""
    files, _skipped = discover([REPO / "transcripts"])
    questions: list[str] = []
    sentences: list[str] = []
    lengths: list[int] = []
    for path in files:
        for segment in read_transcript(path).segments:
            text = " ".join(segment.text.split())
            if not text:
                continue
            if segment.codable:
                parts = [part for part in SENTENCE.split(text) if part.strip()]
                sentences.extend(parts)
                lengths.append(len(parts))
            elif segment.speaker:
                questions.append(text)
    return questions, sentences, lengths


def _rare(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4))).capitalize()


def build_corpus(folder: Path, target_words: int, seed: int = 7) -> tuple[list[str], int]:
    """Interviews made of the sample interviews' questions and of answers recombined from their sentences (as many
    sentences as a sample answer has), with a long tail of words no other interview shares: no answer repeats more than
    by chance, so no cache keyed by a text is flattered, and word caches meet new words as in a real corpus."""
    rng = random.Random(seed)
    questions, sentences, lengths = _sample_turns()
    folder.mkdir(parents=True)
    texts: list[str] = []
    words = 0
    index = 0
    while words < target_words:
        turns = []
        for _pair in range(rng.randint(8, 14)):
            answer = []
            for sentence in rng.sample(sentences, min(len(sentences), rng.choice(lengths))):
                tokens = sentence.split()
                for position in range(len(tokens)):
                    if rng.random() < RARE_SHARE:
                        tokens[position] = _rare(rng)
                answer.append(" ".join(tokens))
            turns.append(f"Interviewer: {rng.choice(questions)}\n\nRespondent: {' '.join(answer)}")
        body = "\n\n".join(turns) + "\n"
        role = ROLES[index % 3]
        (folder / f"{role}-{index:05d}.txt").write_text(f"---\nrole: {role}\n---\n{body}", encoding="utf-8")
        texts.append(body)
        words += len(body.split())
        index += 1
    return texts, words


def corpus_repetition(folder: Path) -> str:
    """How often segment texts repeat in the corpus, and how many distinct words it has: what caches can gain."""
    from collections import Counter

    segments: Counter = Counter()
    words: Counter = Counter()
    for path in sorted(folder.iterdir()):
        for segment in read_transcript(path).segments:
            if segment.codable:
                segments[segment.text] += 1
                words.update(segment.text.lower().split())
    total = sum(segments.values())
    word_total = sum(words.values())
    return (f"{total:,} respondent segments, {len(segments):,} distinct ({100 * len(segments) / total:.1f}%), the most repeated "
            f"{max(segments.values())} times; {word_total:,} words, {len(words):,} distinct: a per-word cache hits at most "
            f"{100 * (1 - len(words) / word_total):.1f}% of lookups")


def run_code(folder: Path, **kwargs):
    with Project.open(folder) as project:
        return code(project, **kwargs)


def _tokenize(texts: list[str]) -> None:
    import spacy

    nlp = spacy.blank("en")
    for _doc in nlp.tokenizer.pipe(texts):
        pass


def tokenizer_on_both_cores(texts: list[str]) -> float:
    """Seconds for two processes each tokenizing half the texts at once: what two cores give the bare tokenizer."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pool.map(_tokenize, [texts[:5], texts[5:10]])  # start and warm both processes first
        start = time.perf_counter()
        pool.map(_tokenize, [texts[0::2], texts[1::2]])
        return time.perf_counter() - start


CPU: dict[str, float] = {}  # CPU-seconds of each timed run (this process and its children)


def _cpu() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, words: int, func) -> float:
    """Words per second of wall time; the CPU-seconds are kept too, since a shared machine's wall time wanders."""
    start, cpu = time.perf_counter(), _cpu()
    func()
    seconds, used = time.perf_counter() - start, _cpu() - cpu
    CPU[label] = used
    print(f"  {label:<44} {seconds:8.2f} s {words / seconds:12,.0f} words/s   ({used:.2f} CPU-s)")
    return words / seconds


def breakdown(folder: Path, codebook_path: Path, words: int) -> None:
    """Where one process spends its time: each stage of `qualcode code` timed alone over the same files."""
    from qualcode.codebook import load_codebook
    from qualcode.ingest.transcripts import file_hash
    from qualcode.store import Store
    from qualcode.suggest.model import suggest
    from qualcode.suggest.pipeline import build_pipeline

    files, _skipped = discover([folder])
    nlp = build_pipeline(load_codebook(codebook_path), vectors=DEFAULT_VECTORS)
    suggester = nlp.get_pipe("qualcode_suggester")
    vectors = nlp.get_pipe("qualcode_vectors")
    stages: list[tuple[str, float]] = []

    def stage(label: str, func):
        start = time.perf_counter()
        value = func()
        stages.append((label, time.perf_counter() - start))
        return value

    stage("hashing files", lambda: [file_hash(path) for path in files])
    transcripts = stage("reading, decoding, segmenting", lambda: [read_transcript(path) for path in files])
    texts = [segment.text for transcript in transcripts for segment in transcript.segments if segment.codable]
    stage("tokenizer (respondent segments)", lambda: [None for _ in nlp.tokenizer.pipe(texts)])
    docs = [nlp.make_doc(text) for text in texts]
    stage("lemmas by lookup (suggester)", lambda: [suggester._set_norms(doc) for doc in docs])
    stage("matching and scoring (suggester)", lambda: [suggester(doc) for doc in docs])
    stage("sentence vectors (qualcode_vectors)", lambda: list(vectors.pipe(iter(docs), batch_size=256)))  # as nlp.pipe runs it
    suggestions = stage("whole pipeline, suggestions out", lambda: [suggest(nlp, [s.text for s in t.segments if s.codable]) for t in transcripts])
    with Store(folder.parent / "breakdown.db") as store:
        stage("SQLite writes", lambda: [store.save_transcript(t, s, pipeline_version="v", path=str(t.path)) for t, s in zip(transcripts, suggestions)])
    total = sum(seconds for label, seconds in stages if label != "whole pipeline, suggestions out" and "suggester" not in label and "vectors" not in label) + \
        sum(seconds for label, seconds in stages if label == "whole pipeline, suggestions out")
    print(f"\nWhere one process spends its time ({len(files)} files, {words:,} words):")
    for label, seconds in stages:
        print(f"  {label:<44} {seconds:8.2f} s {100 * seconds / total:6.1f} %")
    print(f"  {'sum of the stages (pipeline counted once)':<44} {total:8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=1_000_000)
    args = parser.parse_args()

    import spacy

    workdir = Path(tempfile.mkdtemp(prefix="qualcode-bench-"))
    try:
        shutil.copy(REPO / "codebook.yaml", workdir / "codebook.yaml")
        texts, words = build_corpus(workdir / "transcripts", args.words)
        print(f"Corpus: {len(texts)} transcripts, {words:,} words, {sum(map(len, texts)) / 1e6:.1f} MB (in {workdir})")
        print(f"  {corpus_repetition(workdir / 'transcripts')}")

        nlp = spacy.blank("en")
        tokenizer_wps = timed("bare spaCy tokenizer (nlp.tokenizer.pipe)", words, lambda: [None for _ in nlp.tokenizer.pipe(texts)])
        both = tokenizer_on_both_cores(texts)
        print(f"  {'bare tokenizer, 2 processes at once':<44} {both:8.2f} s {words / both:12,.0f} words/s")
        lemma_nlp = spacy.blank("en")
        lemma_nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        lemma_nlp.initialize()
        lemma_wps = timed("tokenizer + lookup lemmatizer (nlp.pipe)", words, lambda: [None for _ in lemma_nlp.pipe(texts)])

        serial = workdir / "serial"
        serial.mkdir()
        shutil.copy(workdir / "codebook.yaml", serial / "codebook.yaml")
        (serial / "qualcode.yaml").write_text("workers: 1\n")
        results = {}
        serial_wps = timed(
            "qualcode code, 1 process", words,
            lambda: results.setdefault("serial", run_code(serial, paths=[workdir / "transcripts"])),
        )
        parallel_wps = timed("qualcode code, default workers", words, lambda: results.setdefault("parallel", run_code(workdir)))
        plain = workdir / "no-vectors"
        plain.mkdir()
        shutil.copy(workdir / "codebook.yaml", plain / "codebook.yaml")
        (plain / "qualcode.yaml").write_text("vectors: none\n")
        plain_wps = timed("qualcode code, default workers, vectors: none", words, lambda: run_code(plain, paths=[workdir / "transcripts"]))
        start = time.perf_counter()
        again = run_code(workdir)
        rerun = time.perf_counter() - start
        print(f"  {'second run, unchanged folder':<44} {rerun:8.2f} s ({len(again.unchanged)} unchanged)")
        assert len(results["parallel"].imported) == len(texts) == len(again.unchanged)

        breakdown(workdir / "transcripts", workdir / "codebook.yaml", words)
        print()
        print(f"lookup lemmatizer alone / tokenizer:  {lemma_wps / tokenizer_wps:.2f}")
        print(f"qualcode (1 process) / tokenizer:     {serial_wps / tokenizer_wps:.2f}   (goal: >= 0.45)   by CPU-seconds: "
              f"{CPU['bare spaCy tokenizer (nlp.tokenizer.pipe)'] / CPU['qualcode code, 1 process']:.2f}")
        print(f"qualcode (default) / tokenizer:       {parallel_wps / tokenizer_wps:.2f}   (goal: >= 0.8, both cores)")
        print(f"default / 1 process:                  {parallel_wps / serial_wps:.2f}x")
        print(f"tokenizer, 2 processes / 1 process:   {words / both / tokenizer_wps:.2f}x   (what this machine's two cores give at best)")
        print(f"qualcode (default) / tokenizer on 2:  {parallel_wps / (words / both):.2f}")
        print(f"sentence vectors on / off:            {parallel_wps / plain_wps:.2f}   (default workers; goal: on / tokenizer >= 0.33)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
