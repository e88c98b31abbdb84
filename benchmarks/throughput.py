"""Throughput of `qualcode code` against the bare spaCy tokenizer, measured in one run.

Builds a synthetic corpus of about one million words from the sample transcripts (their
questions, and answers recombined from their sentences with a long tail of words found in no
other interview, so that no answer repeats more than by chance: a cache keyed by a text gains
what it would on real interviews, and the run says how much a per-word cache can), then times,
each in a process of its own (nothing warm from an earlier run: no pipeline, vocabulary or
tokenizer cache inherited), ``--rounds`` times in turn:

1. the bare tokenizer of spacy.blank("en") over the same texts: the practical ceiling;
2. `qualcode code` end to end (read, segment, suggest, write SQLite), in one process (`workers: 1`);
3. the same with the default worker setting (both cores when the batch is large);
4. the same with `vectors: none` (no sentence-vector component);
5. the same into a project whose learned models speak (fitted on another corpus's decisions): the
   models read every segment's sentence vector, so here the vectors are computed (a project
   without models leaves the vector component out).

Each configuration's ratio to the tokenizer is taken within a round (the two measured minutes apart
at most), and the median over the rounds is reported. Then a second run over the unchanged
folder, the tokenizer on two processes at once, and where one process spends its time.

Run: .venv/bin/python benchmarks/throughput.py [--words 1000000] [--rounds 3]
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


_blank = None  # a two-process measurement's tokenizer, built in each process before the clock starts
_together = None  # both processes start tokenizing at once


def _blank_tokenizer(barrier) -> None:
    global _blank, _together
    import spacy

    _blank, _together = spacy.blank("en"), barrier


def _tokenize_timed(texts: list[str]) -> tuple[float, float]:
    assert _blank is not None and _together is not None
    _together.wait(timeout=120)
    start = time.perf_counter()
    for _doc in _blank.tokenizer.pipe(texts):
        pass
    return start, time.perf_counter()


def tokenizer_on_both_cores(texts: list[str]) -> float:
    """Seconds for two processes each tokenizing half the texts at once, from the first's start to the last's end: what
    two cores give the bare tokenizer. Each process builds its tokenizer before the clock starts and then starts cold,
    as the one-process measurement does (building it inside the clock took a tenth of a second of about one second,
    and understated what two cores give)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(2, initializer=_blank_tokenizer, initargs=(context.Barrier(2),)) as pool:
        spans = pool.map(_tokenize_timed, [texts[0::2], texts[1::2]], chunksize=1)
    return max(end for _start, end in spans) - min(start for start, _end in spans)


def _cpu() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
    stage("norms (the suggester's; nothing to write)", lambda: [suggester._set_norms(doc) for doc in docs])
    stage("matching and scoring (suggester)", lambda: [suggester(doc) for doc in docs])
    stage("sentence vectors (qualcode_vectors)", lambda: list(vectors.pipe(iter(docs), batch_size=256)))  # as nlp.pipe runs it
    suggestions = stage("whole pipeline, no models (so no vectors)", lambda: [suggest(nlp, [s.text for s in t.segments if s.codable]) for t in transcripts])
    with Store(folder.parent / "breakdown.db") as store:
        stage("SQLite writes", lambda: [store.save_transcript(t, s, pipeline_version="v", path=str(t.path)) for t, s in zip(transcripts, suggestions)])
    whole = "whole pipeline, no models (so no vectors)"
    total = sum(seconds for label, seconds in stages if label != whole and "suggester" not in label and "vectors" not in label and "tokenizer" not in label) + \
        sum(seconds for label, seconds in stages if label == whole)
    print(f"\nWhere one process spends its time ({len(files)} files, {words:,} words):")
    for label, seconds in stages:
        print(f"  {label:<44} {seconds:8.2f} s {100 * seconds / total:6.1f} %")
    print(f"  {'sum of the stages (pipeline counted once)':<44} {total:8.2f} s")


def _child_tokenizer(corpus: Path) -> dict[str, float]:
    import spacy

    texts = [_body(path) for path in sorted(corpus.iterdir())]
    nlp = spacy.blank("en")
    start, cpu = time.perf_counter(), time.process_time()
    for _doc in nlp.tokenizer.pipe(texts):
        pass
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def _child_code(project: Path, corpus: Path) -> dict[str, float]:
    import resource

    start, cpu = time.perf_counter(), _cpu()
    result = run_code(project, paths=[corpus])
    seconds = time.perf_counter() - start
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "cpu": _cpu() - cpu, "workers_cpu": workers.ru_utime + workers.ru_stime,
            "imported": len(result.imported), "updated": len(result.updated)}


def _body(path: Path) -> str:
    """A corpus file's interview text, as ``build_corpus`` returned it (front matter left out)."""
    return path.read_text(encoding="utf-8").split("---\n", 2)[2]


def measure(*args: str) -> dict[str, float]:
    """One measurement in a new Python process: what a researcher's `qualcode code` meets, nothing warm."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measurement {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def project_copy(source: Path, target: Path, settings: str = "") -> Path:
    """A project to code into: ``source``'s codebook and, when it has one, its database (the trained project's, with
    its decisions and models); never its transcripts."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    shutil.copy(source / "codebook.yaml", target / "codebook.yaml")
    if (source / ".qualcode").is_dir():
        shutil.copytree(source / ".qualcode", target / ".qualcode")
    (target / "qualcode.yaml").write_text(settings)
    return target


def has_models(project: Path) -> bool:
    with Project.open(project, read_only=True) as opened:
        return opened.has_database and opened.store.latest_model_run() is not None


def trained_project(workdir: Path) -> tuple[Path, str]:
    """A project whose learned models speak for some codes: another corpus (200,000 words, other sentences drawn)
    imported, a coder's decisions on 240 of its segments (the four most suggested codes, accepted where the segment
    says "they", a word the rules do not name, so that the models have something to learn beyond the rules), and a fit."""
    from collections import Counter

    from qualcode.store import Entry
    from qualcode.suggest.training import train

    trained = workdir / "trained"
    trained.mkdir()
    shutil.copy(REPO / "codebook.yaml", trained / "codebook.yaml")
    (trained / "qualcode.yaml").write_text("workers: 1\n")
    build_corpus(trained / "transcripts", 200_000, seed=11)
    for path in (trained / "transcripts").iterdir():  # ids of their own: the measured runs import the main corpus as new
        path.rename(path.with_name(f"earlier-{path.name}"))
    run_code(trained)
    with Project.open(trained) as project:
        store = project.store
        rows = store.suggestions(evidence=False)
        texts = {row.id: row.text.lower() for transcript in store.transcripts() for row in store.segments(transcript)}
        entries = []
        for code, _count in Counter(row.code for row in rows).most_common(4):
            for row in [row for row in rows if row.code == code][:60]:
                says = " they " in f" {texts.get(row.segment_id, '')} "
                entries.append(Entry(row.segment_id, code, "accepted" if says else "rejected"))
        store.record(entries, coder="bench")
        result = train(project)
    if not result.models:
        raise SystemExit(f"no learned model speaks for any code (held back: {sorted(result.held_back)}, too few: {result.too_few}, {len(entries)} decisions); "
                         "the models row would measure nothing")
    return trained, f"{len(entries)} decisions, fit in {result.seconds:.1f} s, models speak for {', '.join(sorted(result.models))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import json

        kind, *paths = args.child
        print(json.dumps(_child_tokenizer(Path(paths[0])) if kind == "tokenizer" else _child_code(Path(paths[0]), Path(paths[1]))))
        return

    import statistics
    from collections import defaultdict

    workdir = Path(tempfile.mkdtemp(prefix="qualcode-bench-"))
    try:
        shutil.copy(REPO / "codebook.yaml", workdir / "codebook.yaml")
        corpus = workdir / "transcripts"
        texts, words = build_corpus(corpus, args.words)
        print(f"Corpus: {len(texts)} transcripts, {words:,} words, {sum(map(len, texts)) / 1e6:.1f} MB (in {workdir})")
        print(f"  {corpus_repetition(corpus)}")
        trained, how = trained_project(workdir)
        print(f"  a project with learned models: {how}")

        configurations = {
            "qualcode code, 1 process": (workdir, "workers: 1\n"),
            "qualcode code, default workers": (workdir, ""),
            "default workers, vectors: none": (workdir, "vectors: none\n"),
            "1 process, learned models (vectors read)": (trained, "workers: 1\n"),
            "default workers, learned models": (trained, ""),
        }
        seconds: dict[str, list[float]] = {"tokenizer": []}
        cpu: dict[str, float] = defaultdict(float)  # CPU-seconds over the rounds (the measured process and its children)
        workers_cpu: dict[str, float] = defaultdict(float)  # of which the worker processes
        ratios: dict[str, list[float]] = {}
        print(f"\nEach in a new process, {args.rounds} rounds (seconds; words/s of the median):")
        for _round in range(args.rounds):
            tokenizer = measure("tokenizer", str(corpus))
            seconds["tokenizer"].append(tokenizer["seconds"])
            cpu["tokenizer"] += tokenizer["cpu"]
            for label, (source, settings) in configurations.items():
                project = project_copy(source, workdir / "run", settings)
                if has_models(project) != (source == trained):
                    raise SystemExit(f"{label}: the project {'lacks' if source == trained else 'has'} learned models")
                measured = measure("code", str(project), str(corpus))
                if measured["imported"] != len(texts) or measured["updated"]:
                    raise SystemExit(f"{label}: imported {measured['imported']} of {len(texts)}, updated {measured['updated']}")
                seconds.setdefault(label, []).append(measured["seconds"])
                cpu[label] += measured["cpu"]
                workers_cpu[label] += measured["workers_cpu"]
                ratios.setdefault(label, []).append(tokenizer["seconds"] / measured["seconds"])
        for label, values in seconds.items():
            median = statistics.median(values)
            split = f", {workers_cpu[label] / len(values):.2f} in workers" if workers_cpu[label] else ""
            print(f"  {label:<44} {' '.join(f'{value:6.2f}' for value in values)}   {words / median:10,.0f} words/s   "
                  f"({cpu[label] / len(values):.2f} CPU-s a run{split})")
        final = project_copy(workdir, workdir / "final")
        run_code(final, paths=[corpus])
        start = time.perf_counter()
        again = run_code(final, paths=[corpus])
        rerun = time.perf_counter() - start
        print(f"  {'second run, unchanged folder':<44} {rerun:6.2f} s ({len(again.unchanged)} unchanged)")
        both = tokenizer_on_both_cores(texts)
        print(f"  {'bare tokenizer, 2 processes at once':<44} {both:6.2f} s {words / both:12,.0f} words/s")

        breakdown(corpus, workdir / "codebook.yaml", words)
        tokenizer_median = statistics.median(seconds["tokenizer"])

        def ratio(label: str) -> str:
            values = ratios[label]
            return f"{statistics.median(values):.2f}  (rounds: {', '.join(f'{value:.2f}' for value in values)})"

        print()
        print(f"qualcode (1 process) / tokenizer:          {ratio('qualcode code, 1 process')}   goal >= 0.45")
        print(f"qualcode (default) / tokenizer:            {ratio('qualcode code, default workers')}   goal >= 0.8 (both cores)")
        print(f"vectors: none (default) / tokenizer:       {ratio('default workers, vectors: none')}")
        print(f"learned models (1 process) / tokenizer:    {ratio('1 process, learned models (vectors read)')}")
        print(f"learned models (default) / tokenizer:      {ratio('default workers, learned models')}")
        print(f"tokenizer, 2 processes / 1 process:        {tokenizer_median / both:.2f}x   (what this machine's two cores give at best)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
