"""Suggestion quality on public human-coded data, for random and active review orders.

Simulates a researcher who reviews 20% or 50% of the units, then scores the machine on the rest,
per code, with Cohen's kappa, over at least 10 random splits (mean and standard error):

* order ``random``: the reviewed units are a random sample;
* order ``active``: a random 5% first, then, batch by batch (5% of the units each), the units the
  models are least sure of (mean over codes of 1 - |2p - 1|; a code without a model yet counts as
  unsure where its rules fire), the models refitted after each batch;
* order ``switch`` (50% only): a random 20% first, as a researcher reads, then active batches: what
  a default that turns active part-way through a study would do.

First, per dataset: the rules alone against what qualcode suggests once it has learned, per code and
paired over the same random splits, at 10%, 20% and 50% reviewed ("rules against learned"). Then,
per dataset, fraction and order: kappa on the unreviewed units (machine against the human
codes), and corpus kappa (the corpus a researcher ends with: their own codes where they reviewed,
the machine's elsewhere, against the human codes on every unit). The models are qualcode's own
(`fit_models` and `blend`). Calibration (Brier score and expected calibration error over 10 bins)
is reported for rule, learned and blended confidences at 50% reviewed in random order.

Data (read from ../shared/benchmarks/data/, never copied into the project):
* dubois_gold.csv: 233 newspaper passages, 9 interpretive codes (Dunivin 2024, arXiv 2401.15170).
* scrum_quality_coded.csv: interview chunks; scored on the human `theme` (16 themes) and on
  the human first-cycle `code_1` values given to at least 10 chunks, one-vs-rest.

Rule codebooks: `careful` scores the Scrum themes with benchmarks/codebooks/scrum_themes.yaml, keywords
and phrases written with care from what each theme means, before reading any chunk (the case where
the rules are strong). The Du Bois codebook below was written from the code names and the dataset's
descriptions, and `theme` and `code_1` take the code names alone: rules that any model beats. None
is tuned to the data.

Run: .venv/bin/python benchmarks/quality.py [--splits 10] [--datasets careful,dubois,theme,code_1]
     [--sections rules,orders,calibration,vectors,context,speed]
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "benchmarks" / "data"
sys.path.insert(0, str(REPO))

from qualcode.codebook import parse_codebook  # noqa: E402
from qualcode.review.ordering import cold_similarity, segment_uncertainty  # noqa: E402
from qualcode.statistics import cohen_kappa  # noqa: E402
from qualcode.suggest.model import blend, fit_models  # noqa: E402
from qualcode.suggest.pipeline import build_pipeline, suggestions_from_doc  # noqa: E402
from qualcode.suggest.vectors import CONTEXT_EXTENSION, doc_vectors, load_vectors  # noqa: E402
from qualcode.vocabulary import DEFAULT_VECTORS, ContextFeatures, VectorModel  # noqa: E402

FRACTIONS = (0.2, 0.5)
ORDERS = ("random", "active", "switch")
SEED_FRACTION = 0.05  # the active order's random start, and its batch size
BATCH_FRACTION = 0.05
SWITCH_AT = 0.2  # the switch order: random (as a researcher reads) until this share is reviewed, active after

DUBOIS_CODEBOOK = """
codes:
  - id: scholar
    label: Scholar
    description: Du Bois portrayed as a scholar or intellectual.
    keywords: [scholar, scholarly, scholarship, intellectual, historian, sociologist, professor, academic, author, writer, thinker, philosopher, economist, educator, phd, harvard, "ph.d."]
    phrases: [first black, first negro, doctorate from harvard, the great scholar]
  - id: activist
    label: Activist
    description: Du Bois portrayed as an activist or civil rights leader.
    keywords: [activist, activism, agitator, militant, radical, crusader, founder, organizer, leader, naacp, protest, fighter, pan-african, pan-africanism, niagara]
    phrases: [civil rights leader, civil rights movement, founder of the naacp, niagara movement, black leader, negro leader]
  - id: monumental
    label: Monumental Memorialization
    description: Du Bois memorialized in monuments, buildings, places, honours or commemorations.
    keywords: [monument, memorial, statue, plaque, named, honor, honour, commemorate, commemoration, anniversary, centennial, dedicate, dedication, stamp, park, library, school, hall, tribute, birthplace, landmark]
    phrases: [named after, named for, in honor of, in memory of, birthday celebration]
  - id: scholarly_work
    label: Mention of Scholarly Work
    description: A mention of one of Du Bois's books, studies or essays.
    keywords: [book, essay, study, wrote, writing, published, novel, editor, crisis, reconstruction, souls]
    phrases: [souls of black folk, black reconstruction, the philadelphia negro, the crisis, double consciousness, color line, talented tenth, the problem of the twentieth century]
  - id: advocacy
    label: Social/Political Advocacy
    description: Du Bois invoked in advocating social or political change (civil rights, equality, justice).
    keywords: [equality, justice, rights, discrimination, segregation, racism, racist, integration, freedom, liberation, oppression, reform, vote, voting, suffrage, struggle, fight, demand, advocate]
    phrases: [civil rights, equal rights, social justice, racial justice, human rights, color line]
  - id: coalition
    label: Coalition Building
    description: Du Bois invoked to build coalitions or unity between groups or movements.
    keywords: [coalition, alliance, unity, solidarity, together, cooperation, unite, united, joint, partnership, bridge]
    phrases: [work together, join forces, common cause, black and white]
  - id: mouth_academics
    label: Out of the Mouth of Academics
    description: Du Bois quoted or invoked by an academic (professor, scholar, researcher).
    keywords: [professor, scholar, historian, sociologist, researcher, university, college, dean, lecturer]
    phrases: [professor of, according to professor, said professor, at harvard, at yale, at columbia, at howard]
  - id: mouth_activists
    label: Out of the Mouth of Activists
    description: Du Bois quoted or invoked by an activist or movement leader.
    keywords: [activist, organizer, protester, minister, reverend, naacp, panther, rally, march, leader]
    phrases: [civil rights leader, said the rev, black panther, at the rally]
  - id: synecdoche
    label: Collective Synecdoche
    description: Du Bois listed among other Black figures as representative of a group or tradition.
    keywords: [douglass, washington, garvey, king, malcolm, robeson, truth, tubman, hughes, baldwin, wright, ellison, carver, randolph, such]
    phrases: [such as, like frederick douglass, booker t. washington, martin luther king, marcus garvey, frederick douglass, paul robeson, langston hughes]
"""

SCRUM_STOPWORDS = {"and", "of", "for", "the", "a", "to", "in", "on", "with", "about", "quality", "software"}


def rules_from_names(names: list[str]) -> str:
    """A naive codebook from code names alone: the name as a phrase, its content words as keywords."""
    lines = ["codes:"]
    taken = set()
    for name in names:
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:60] or "code"
        if not slug[0].isalpha():
            slug = "c_" + slug
        while slug in taken:
            slug += "_"
        taken.add(slug)
        words = [w for w in re.findall(r"[a-z]+", name.lower()) if w not in SCRUM_STOPWORDS and len(w) > 2]
        quoted = lambda items: "[" + ", ".join('"' + item.replace('"', "") + '"' for item in items) + "]"  # noqa: E731
        lines += [f"  - id: {slug}", f'    label: "{name}"', f"    phrases: {quoted([name.lower()])}"]
        if words:
            lines.append(f"    keywords: {quoted(sorted(set(words)))}")
    return "\n".join(lines) + "\n"


def previous_units(groups: list[str], texts: list[str]) -> list[str | None]:
    """Per unit, the text of the unit before it in the same document (another text: a chunk coded twice is one unit)."""
    found: list[str | None] = []
    last: dict[str, str] = {}
    for index, (group, text) in enumerate(zip(groups, texts)):
        before = last.get(group)
        found.append(before)
        if index + 1 < len(texts) and texts[index + 1] == text:
            continue
        last[group] = text
    return found


def load_dubois() -> tuple[list[str], dict[str, list[int]], str, list[tuple[str | None, str | None]]]:
    import pandas as pd

    frame = pd.read_csv(DATA / "dubois_gold.csv")
    columns = {
        "scholar": "Scholar", "activist": "Activist", "monumental": "Monumental Memorialization",
        "scholarly_work": "Mention of Scholarly Work", "advocacy": "Social/Political Advocacy",
        "coalition": "Coalition Building", "mouth_academics": "Out of the Mouth of Academics",
        "mouth_activists": "Out of the Mouth of Activists", "synecdoche": "Collective Synecdoche",
    }
    texts = [" ".join(str(text).split()) for text in frame["passage"]]
    labels = {code: frame[column].fillna(0).astype(int).tolist() for code, column in columns.items()}
    # No interviewer here: the article's headline stands in for the question a passage answers.
    titles = [" ".join(str(title).split()) for title in frame["title"]]
    return texts, labels, DUBOIS_CODEBOOK, list(zip(titles, previous_units([str(url) for url in frame["url"]], texts)))


def load_scrum(column: str, minimum: int, codebook_text: str | None = None
               ) -> tuple[list[str], dict[str, list[int]], str, list[tuple[str | None, str | None]]]:
    import pandas as pd

    frame = pd.read_csv(DATA / "scrum_quality_coded.csv")
    frame = frame[frame["text_chunk"].notna() & frame[column].notna()]
    values = frame[column].str.strip()
    counts = values.str.lower().value_counts()
    names = []
    for value in values:
        if counts[value.lower()] >= minimum and value.lower() not in {name.lower() for name in names}:
            names.append(value)
    codebook_text = codebook_text or rules_from_names(names)
    codebook = parse_codebook(codebook_text)
    by_label = {code.label.lower(): code.id for code in codebook.codes.values()}
    texts = [" ".join(str(text).split()) for text in frame["text_chunk"]]
    labels = {code_id: [int(value.lower() == label) for value in values] for label, code_id in by_label.items()}
    # The interviewer's questions are not in the data (only a research question's number): the chunk before is.
    previous = previous_units([str(document) for document in frame["document ID"]], texts)
    return texts, labels, codebook_text, [(None, before) for before in previous]


def kappa(truth: list[int], predicted: list[int]) -> float:
    value = cohen_kappa(truth, predicted)
    return value if value is not None else 0.0


def mean_se(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) / math.sqrt(len(values)):.3f}"


class Dataset:
    """Texts, human labels and a rule codebook, with the spaCy docs made once."""

    def __init__(self, name: str, texts: list[str], labels: dict[str, list[int]], codebook_text: str,
                 vectors: VectorModel = DEFAULT_VECTORS, contexts: list[tuple[str | None, str | None]] | None = None) -> None:
        self.name, self.texts, self.labels, self.vectors = name, texts, labels, vectors
        self.context = ContextFeatures.BOTH if contexts is not None else ContextFeatures.NONE
        codebook = parse_codebook(codebook_text)
        nlp = build_pipeline(codebook, vectors=vectors)
        self.docs = list(nlp.pipe(texts, batch_size=128))
        if contexts is not None:  # as qualcode's workers attach them: the neighbours' own vectors, beside each Doc's
            table = load_vectors(vectors)
            vector = lambda text: table.doc_vector(nlp.make_doc(text)) if text else None  # noqa: E731
            for doc, (question, previous) in zip(self.docs, contexts):
                doc._.set(CONTEXT_EXTENSION, (vector(question), vector(previous)))
        self.rule_codes = [code.id for code in codebook.suggestible()]
        self.rules = [{s.code: s.confidence for s in suggestions_from_doc(doc)} for doc in self.docs]
        self.codes = list(labels)
        self.code_objects = [codebook.codes[code] for code in self.codes if code in codebook.codes]
        self.vector_matrix = doc_vectors(self.docs, vectors) if vectors != VectorModel.NONE else None

    def fit(self, reviewed: list[int], seed: int, *, use_rules: bool = True):
        return fit_models([self.docs[i] for i in reviewed], {c: [self.labels[c][i] for i in reviewed] for c in self.codes},
                          rule_codes=self.rule_codes, seed=seed, use_rules=use_rules, vectors=self.vectors, context=self.context)

    def machine(self, models, units: list[int]) -> dict[str, list[int]]:
        """The machine's yes/no per code on ``units``: what review would show as suggested."""
        rows = blend([self.docs[i] for i in units], models)  # models None: the rules alone
        return {code: [int(any(s.code == code and s.says_yes for s in row)) for row in rows] for code in self.codes}

    def uncertainty(self, models, units: list[int], reviewed: list[int]) -> list[float]:
        """The active order's score (qualcode's own, `ordering.segment_uncertainty`) of each unit."""
        probabilities = models.probabilities([self.docs[i] for i in units]) if models.models else {}
        similarity = {}
        if self.vector_matrix is not None:
            applied = {code for code in self.codes if any(self.labels[code][i] for i in reviewed)}
            cold = [code for code in self.code_objects if code.id not in probabilities and code.id not in applied]
            similarity = cold_similarity(cold, self.vector_matrix[units], self.vectors)
        return [segment_uncertainty(self.codes, probabilities, row, self.rules[unit], similarity) for row, unit in enumerate(units)]


def review_order(data: Dataset, fraction: float, order: str, split: int) -> list[int]:
    """The units a researcher reviews, in that order's way of choosing them."""
    units = list(range(len(data.texts)))
    generator = random.Random(split)
    generator.shuffle(units)
    target = int(round(fraction * len(units)))
    if order == "random" or (order == "switch" and fraction <= SWITCH_AT):
        return units[:target]
    start = SWITCH_AT if order == "switch" else SEED_FRACTION
    reviewed = units[: max(1, int(round(start * len(units))))]
    batch = max(1, int(round(BATCH_FRACTION * len(units))))
    while len(reviewed) < target:
        chosen = set(reviewed)
        pending = [unit for unit in units if unit not in chosen]
        models = data.fit(reviewed, split)
        scores = data.uncertainty(models, pending, reviewed)
        ranked = [unit for _score, unit in sorted(zip(scores, pending), key=lambda pair: -pair[0])]
        reviewed += ranked[: min(batch, target - len(reviewed))]
    return reviewed


def run_dataset(data: Dataset, splits: int, orders: tuple[str, ...] = ORDERS) -> dict:
    results: dict = {}
    for fraction in FRACTIONS:
        for order in orders:
            if order == "switch" and fraction <= SWITCH_AT:
                continue  # the same units as random
            unreviewed_kappas, corpus_kappas = [], []
            per_code: dict[str, list[float]] = {code: [] for code in data.codes}
            for split in range(splits):
                reviewed = review_order(data, fraction, order, split)
                chosen = set(reviewed)
                rest = [unit for unit in range(len(data.texts)) if unit not in chosen]
                models = data.fit(reviewed, split)
                machine = data.machine(models, rest)
                split_kappas, split_corpus = [], []
                for code in data.codes:
                    truth = [data.labels[code][i] for i in rest]
                    value = kappa(truth, machine[code])
                    split_kappas.append(value)
                    per_code[code].append(value)
                    corpus = dict(zip(rest, machine[code]))
                    ended = [data.labels[code][i] if i in chosen else corpus[i] for i in range(len(data.texts))]
                    split_corpus.append(kappa(data.labels[code], ended))
                unreviewed_kappas.append(statistics.mean(split_kappas))
                corpus_kappas.append(statistics.mean(split_corpus))
            results[(fraction, order)] = (unreviewed_kappas, corpus_kappas, {c: statistics.mean(v) for c, v in per_code.items()})
    return results


RULES_FRACTIONS = (0.1, 0.2, 0.5)


def rules_against_learned(data: Dataset, splits: int, fractions: tuple[float, ...] = RULES_FRACTIONS) -> dict:
    """Per fraction reviewed (random order), over the same splits: per-code kappa on the unreviewed units of the rules
    alone and of what qualcode suggests once it has learned (``fit_models`` and ``blend``, as shipped), and which codes
    the learned suggestions took from a model."""
    found: dict = {}
    for fraction in fractions:
        rules: dict[str, list[float]] = {code: [] for code in data.codes}
        learned: dict[str, list[float]] = {code: [] for code in data.codes}
        modelled: dict[str, int] = {code: 0 for code in data.codes}
        for split in range(splits):
            reviewed = review_order(data, fraction, "random", split)
            chosen = set(reviewed)
            rest = [unit for unit in range(len(data.texts)) if unit not in chosen]
            models = data.fit(reviewed, split)
            machine = data.machine(models, rest)
            alone = data.machine(None, rest)
            for code in data.codes:
                truth = [data.labels[code][i] for i in rest]
                rules[code].append(kappa(truth, alone[code]))
                learned[code].append(kappa(truth, machine[code]))
                modelled[code] += code in models.models
        found[fraction] = (rules, learned, modelled)
    return found


def print_rules_against_learned(data: Dataset, found: dict, splits: int) -> None:
    positives = {code: sum(values) for code, values in data.labels.items()}
    print(f"Rules against learned ({splits} random splits, paired; mean per-code kappa on the unreviewed units, mean ± SE over splits):")
    print(f"{'reviewed':>9} | {'rules alone':>15} | {'learned':>15} | {'learned - rules':>17} | codes with a model (mean per split)")
    for fraction, (rules, learned, modelled) in found.items():
        per_split_rules = [statistics.mean(values[s] for values in rules.values()) for s in range(splits)]
        per_split_learned = [statistics.mean(values[s] for values in learned.values()) for s in range(splits)]
        gains = [a - b for a, b in zip(per_split_learned, per_split_rules)]
        print(f"{int(fraction * 100):>8}% | {mean_se(per_split_rules):>15} | {mean_se(per_split_learned):>15} | {mean_se(gains):>17} | "
              f"{sum(modelled.values()) / splits:.1f} of {len(data.codes)}")
    print("Per code (positives in brackets): rules / learned kappa, mean over splits, at each fraction; * marks a code the learned "
          "suggestions leave more than 0.05 below its rules")
    for code in data.codes:
        cells = []
        for rules, learned, modelled in found.values():
            r, m = statistics.mean(rules[code]), statistics.mean(learned[code])
            cells.append(f"{r:5.2f} / {m:5.2f}{'*' if m < r - 0.05 else ' '} ({modelled[code]:>2})")
        print(f"  {code[:28] + f' ({positives[code]})':<34} " + "   ".join(cells))


def calibration(data: Dataset, splits: int) -> dict[str, tuple[float, float]]:
    """Brier score and ECE (10 bins) of each confidence as a probability that the code applies, at 50% reviewed."""
    pairs: dict[str, list[tuple[float, int]]] = {"rules": [], "learned": [], "learned, calibrated": [], "blended": []}
    for split in range(splits):
        reviewed = review_order(data, 0.5, "random", split)
        chosen = set(reviewed)
        rest = [unit for unit in range(len(data.texts)) if unit not in chosen]
        learned = data.fit(reviewed, split, use_rules=False)
        stacked = data.fit(reviewed, split)
        learned_p = learned.probabilities([data.docs[i] for i in rest])
        learned_c = learned.calibrated(learned_p)
        stacked_p = stacked.probabilities([data.docs[i] for i in rest])
        blended = blend([data.docs[i] for i in rest], stacked)
        for row, unit in enumerate(rest):
            shown = {s.code: s.confidence for s in blended[row]}
            for code in data.codes:
                truth = data.labels[code][unit]
                pairs["rules"].append((data.rules[unit].get(code, 0.0), truth))
                if code in learned_p:
                    pairs["learned"].append((learned_p[code][row], truth))
                    pairs["learned, calibrated"].append((learned_c[code][row], truth))
                # What review shows: the shown confidence; a code not shown at all, the model's calibrated probability or 0.
                hidden = stacked.models[code].calibrated([stacked_p[code][row]])[0] if code in stacked_p else 0.0
                pairs["blended"].append((shown.get(code, hidden), truth))
    found = {}
    for name, values in pairs.items():
        if not values:
            continue
        brier = statistics.mean((p - y) ** 2 for p, y in values)
        bins: dict[int, list[tuple[float, int]]] = {}
        for p, y in values:
            bins.setdefault(min(9, int(p * 10)), []).append((p, y))
        ece = sum(len(b) / len(values) * abs(statistics.mean(p for p, _ in b) - statistics.mean(y for _, y in b)) for b in bins.values())
        base = statistics.mean(y for _, y in values)
        found[name] = (brier, ece, base * (1 - base))
    return found


def print_paired(title: str, results: dict, other: dict, label: str) -> None:
    print(title)
    for (fraction, order), (unreviewed, corpus, _codes) in other.items():
        ratio = statistics.mean(results[(fraction, order)][0]) / (statistics.mean(unreviewed) or 1.0)
        gains = [a - b for a, b in zip(results[(fraction, order)][0], unreviewed)]
        print(f"{int(fraction * 100):>8}% {order:>7} | {mean_se(unreviewed):>18} | {mean_se(corpus):>15}   {label}: x{ratio:.3f} "
              f"(paired gain {mean_se(gains)})")


def print_orders(data: Dataset, results: dict) -> None:
    print(f"{'reviewed':>9} {'order':>7} | {'kappa, unreviewed':>18} | {'corpus kappa':>15}")
    for (fraction, order), (unreviewed, corpus, _codes) in results.items():
        print(f"{int(fraction * 100):>8}% {order:>7} | {mean_se(unreviewed):>18} | {mean_se(corpus):>15}")
    positives = {code: sum(values) for code, values in data.labels.items()}
    print("Per-code kappa on the unreviewed units at 50% (random / active; positives in brackets):")
    for code in data.codes:
        print(f"  {code[:30] + f' ({positives[code]})':<36} {results[(0.5, 'random')][2][code]:6.3f} / {results[(0.5, 'active')][2][code]:6.3f}")


def print_calibration(calibrated: dict) -> None:
    print("Calibration at 50% reviewed, random order (confidence read as the probability that the code applies; "
          "Brier of always saying the base rate in brackets):")
    for name, (brier, ece, base) in calibrated.items():
        print(f"  {name:<8} Brier {brier:.4f} ({base:.4f})  ECE {ece:.4f}")


def training_speed() -> None:
    """Time to fit on 5,000 reviewed segments built from the sample transcripts."""
    from qualcode.codebook import load_codebook
    from qualcode.ingest.transcripts import discover, read_transcript

    codebook = load_codebook(REPO / "codebook.yaml")
    nlp = build_pipeline(codebook)
    files, _ = discover([REPO / "transcripts"])
    segments = [s.text for path in files for s in read_transcript(path).segments if s.codable]
    rng = random.Random(0)
    texts = []
    while len(texts) < 5000:
        words = rng.choice(segments).split()
        rng.shuffle(words)
        texts.append(" ".join(words))
    docs = list(nlp.pipe(texts, batch_size=256))
    rule_codes = [code.id for code in codebook.suggestible()]
    labels = {code: [int(any(s.code == code for s in suggestions_from_doc(doc)) != (rng.random() < 0.1)) for doc in docs] for code in rule_codes}
    start = time.perf_counter()
    models = fit_models(docs, labels, rule_codes=rule_codes, seed=0)
    seconds = time.perf_counter() - start
    print(
        f"\nTraining on 5,000 reviewed segments: {len(rule_codes)} codes cross-validated (3 folds, two feature sets, thresholds), "
        f"{len(models.models)} models kept, {len(models.rules_better)} codes keep their rules: {seconds:.1f} s"
    )


SECTIONS = ("rules", "orders", "calibration", "vectors", "context", "speed")
CAREFUL_CODEBOOK = REPO / "benchmarks" / "codebooks" / "scrum_themes.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--datasets", default="careful,dubois,theme,code_1")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not DATA.exists():
        print(f"Benchmark data not found at {DATA}: this benchmark needs ../shared/benchmarks/data beside the project.")
        sys.exit(1)
    started = time.perf_counter()
    loaders = {"careful": lambda: ("Scrum interviews, human `theme`, rules written with care (benchmarks/codebooks/scrum_themes.yaml)",
                                   *load_scrum("theme", 1, CAREFUL_CODEBOOK.read_text(encoding="utf-8"))),
               "dubois": lambda: ("Du Bois (dubois_gold.csv)", *load_dubois()),
               "theme": lambda: ("Scrum interviews, human `theme`, rules from the theme names", *load_scrum("theme", 1)),
               "code_1": lambda: ("Scrum interviews, human `code_1` (values on >= 10 chunks), rules from the names", *load_scrum("code_1", 10))}
    for key in args.datasets.split(","):
        name, texts, labels, codebook, contexts = loaders[key]()
        data = Dataset(name, texts, labels, codebook)
        began = time.perf_counter()
        print(f"\n## {data.name}: {len(data.texts)} units, {len(data.codes)} codes; {args.splits} splits, mean ± standard error", flush=True)
        if "rules" in sections:
            print_rules_against_learned(data, rules_against_learned(data, args.splits), args.splits)
        if "orders" in sections:
            results = run_dataset(data, args.splits)
            print_orders(data, results)
            if "vectors" in sections:
                baseline = run_dataset(Dataset(name, texts, labels, codebook, vectors=VectorModel.NONE), args.splits, ("random",))
                print_paired("Baseline in this run, the same splits without sentence vectors (vectors: none), random order:",
                             results, baseline, "with vectors")
            if "context" in sections:
                with_context = run_dataset(Dataset(name, texts, labels, codebook, contexts=contexts), args.splits, ("random",))
                print_paired("The same splits with context (context: both; the shipped default is none), random order; "
                             "gain of the default over it:", results, with_context, "without context")
        if "calibration" in sections:
            print_calibration(calibration(data, args.splits))
        print(f"({time.perf_counter() - began:.0f} s)", flush=True)
    print("\nReference (published, not measured here): GPT-4 reached kappa >= 0.6 on 8 of 9 Du Bois codes (Dunivin 2024).")
    if "speed" in sections:
        training_speed()
    print(f"\nTotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
