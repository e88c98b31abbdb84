"""Does `qualcode discover` find themes the codebook lacks? Measured on the Scrum interviews' 16 human themes.

Each theme in turn is hidden: the codebook is the careful one (benchmarks/codebooks/scrum_themes.yaml) without it,
and a researcher has coded half of the chunks (a random half) with the other themes; on the other half the machine
suggests them (their rules). What no code covers, the chunks `discover` groups, is then the hidden theme's reviewed
chunks and every chunk no other theme's rule fires on. The hidden theme counts as found when some candidate's chunks
are at least half that theme's and it holds at least a third of the theme's chunks in the pool. Reported: the share
of hidden themes found (over the themes with at least 10 chunks, which a group of the default minimum size can
hold), the adjusted Rand index of the groups against the human themes on the pool (noise as a group of its own),
and the same for a plain baseline in the same run: k-means on TF-IDF with k = the true number of themes in the pool.
Also the time to group 10,000 segments.

Data: ../shared/benchmarks/data/scrum_quality_coded.csv (read from there, never copied). Chunks coded twice are one
unit (their first theme). Deterministic: fixed seeds.

Run: .venv/bin/python benchmarks/discover.py [--splits 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "benchmarks" / "data"
sys.path.insert(0, str(REPO))

from qualcode.codebook import parse_codebook  # noqa: E402
from qualcode.suggest.discover import class_terms, combine, default_min_size, group  # noqa: E402
from qualcode.suggest.pipeline import build_pipeline, suggestions_from_doc  # noqa: E402
from qualcode.suggest.vectors import load_vectors  # noqa: E402
from qualcode.vocabulary import DEFAULT_VECTORS  # noqa: E402

CODEBOOK = REPO / "benchmarks" / "codebooks" / "scrum_themes.yaml"
MIN_THEME = 10


def load() -> tuple[list[str], list[str]]:
    import pandas as pd

    frame = pd.read_csv(DATA / "scrum_quality_coded.csv")
    frame = frame[frame["text_chunk"].notna() & frame["theme"].notna()]
    seen: dict[str, str] = {}
    for text, theme in zip(frame["text_chunk"], frame["theme"]):
        text = " ".join(str(text).strip().strip('"').split())
        seen.setdefault(text, str(theme).strip().lower())
    return list(seen), list(seen.values())


def found(labels: list[int], truth: list[str], theme: str, total: int) -> bool:
    """Some group is at least half ``theme`` and holds at least a third of its ``total`` chunks."""
    for label in set(labels) - {-1}:
        rows = [i for i, value in enumerate(labels) if value == label]
        hits = sum(1 for i in rows if truth[i] == theme)
        if hits * 2 >= len(rows) and hits * 3 >= total and hits:
            return True
    return False


def kmeans_baseline(texts: list[str], k: int, seed: int) -> list[int]:
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(texts)
    return KMeans(n_clusters=max(1, k), n_init=10, random_state=seed).fit_predict(matrix).tolist()


def at_least(labels: list[int], size: int) -> list[int]:
    """A group smaller than ``size`` is noise for the baseline too: a handful of chunks is not a theme."""
    counts = {label: labels.count(label) for label in set(labels)}
    return [label if counts[label] >= size else -1 for label in labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args()
    from sklearn.metrics import adjusted_rand_score

    texts, themes = load()
    codebook = parse_codebook(CODEBOOK.read_text(encoding="utf-8"))
    label_to_id = {code.label.lower(): code.id for code in codebook.codes.values()}
    nlp = build_pipeline(codebook)
    fired = [{s.code for s in suggestions_from_doc(doc)} for doc in nlp.pipe(texts, batch_size=128)]
    table = load_vectors(DEFAULT_VECTORS)
    import numpy as np

    vectors = np.array([table.doc_vector(nlp.make_doc(text)) for text in texts])
    sizes = {theme: themes.count(theme) for theme in set(themes)}
    hideable = sorted(theme for theme, size in sizes.items() if size >= MIN_THEME)
    print(f"Scrum themes: {len(texts)} distinct chunks, {len(sizes)} themes, {len(hideable)} with at least {MIN_THEME} chunks; "
          f"{args.splits} splits (which half is reviewed)")
    ours_found, base_found, ours_ari, base_ari, pool_sizes, groups_made, noise_share = [], [], [], [], [], [], []
    rows_out = []
    for theme in hideable:
        hidden = label_to_id[theme]
        hits_ours = hits_base = 0
        for split in range(args.splits):
            order = list(range(len(texts)))
            random.Random(split).shuffle(order)
            reviewed = set(order[: len(order) // 2])
            pool = [i for i in range(len(texts)) if (themes[i] == theme if i in reviewed else not (fired[i] - {hidden}))]
            truth = [themes[i] for i in pool]
            total = truth.count(theme)
            matrix = combine([texts[i] for i in pool], vectors[pool], seed=split)
            size = default_min_size(len(pool))
            labels = group(matrix, size, split).tolist()
            k = len(set(truth))
            baseline = at_least(kmeans_baseline([texts[i] for i in pool], k, split), size)
            ours, base = found(labels, truth, theme, total), found(baseline, truth, theme, total)
            hits_ours += ours
            hits_base += base
            ours_found.append(ours)
            base_found.append(base)
            ours_ari.append(adjusted_rand_score(truth, labels))
            base_ari.append(adjusted_rand_score(truth, baseline))
            pool_sizes.append(len(pool))
            groups_made.append(len(set(labels) - {-1}))
            noise_share.append(labels.count(-1) / len(labels))
        rows_out.append((theme, sizes[theme], hits_ours, hits_base))
    print(f"{'hidden theme':<34}{'chunks':>7}{'found (discover)':>18}{'found (k-means)':>17}")
    for theme, size, ours, base in rows_out:
        print(f"{theme[:33]:<34}{size:>7}{f'{ours}/{args.splits}':>18}{f'{base}/{args.splits}':>17}")
    se = lambda values: statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0  # noqa: E731
    print(f"\nHidden themes found: discover {statistics.mean(ours_found):.2f}, k-means baseline {statistics.mean(base_found):.2f} "
          f"(share of {len(ours_found)} theme x split cases)")
    print(f"Adjusted Rand index on the pool: discover {statistics.mean(ours_ari):.3f} ± {se(ours_ari):.3f}, "
          f"k-means {statistics.mean(base_ari):.3f} ± {se(base_ari):.3f}")
    print(f"Pool: {statistics.mean(pool_sizes):.0f} chunks on average; discover made {statistics.mean(groups_made):.1f} groups, "
          f"{statistics.mean(noise_share):.0%} of the pool left as noise")
    # all chunks at once, every theme, the names it gives
    matrix = combine(texts, vectors, seed=0)
    labels = group(matrix, default_min_size(len(texts))).tolist()
    k = len(sizes)
    print(f"\nAll {len(texts)} chunks (discover --all): ARI {adjusted_rand_score(themes, labels):.3f} against the {k} themes, "
          f"{len(set(labels) - {-1})} groups (k-means, k = {k}: {adjusted_rand_score(themes, kmeans_baseline(texts, k, 0)):.3f}; "
          f"with the same minimum group size: {adjusted_rand_score(themes, at_least(kmeans_baseline(texts, k, 0), default_min_size(len(texts)))):.3f})")
    clusters = sorted(set(labels) - {-1}, key=lambda label: -labels.count(label))
    names = class_terms([[texts[i] for i, value in enumerate(labels) if value == label] for label in clusters])
    for label, (words, phrases) in zip(clusters, names):
        members = [themes[i] for i, value in enumerate(labels) if value == label]
        top, count = max(((theme, members.count(theme)) for theme in set(members)), key=lambda pair: pair[1])
        print(f"  {labels.count(label):>4} chunks, {count / len(members):.0%} '{top}': {', '.join(phrases[:2] + words[:4])}")
    rng = np.random.default_rng(0)
    repeat = 10_000 // len(texts) + 1
    big = np.repeat(vectors, repeat, axis=0)[:10_000] + 0.02 * rng.normal(size=(10_000, vectors.shape[1]))
    big_texts = [texts[i % len(texts)] for i in range(10_000)]
    started = time.perf_counter()
    big_labels = group(combine(big_texts, big, seed=0), default_min_size(10_000))
    print(f"\nGrouping 10,000 segments (the chunks repeated with noise on their vectors): {time.perf_counter() - started:.1f} s, "
          f"{len(set(big_labels.tolist()) - {-1})} groups")


if __name__ == "__main__":
    main()
