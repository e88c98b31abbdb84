"""Themes the codebook does not have yet: grouping what no code covers, and naming the groups.

The segments no code covers (no code accepted or added by a coder, no suggestion the machine says yes to; or every
segment) are read as sentence vectors and TF-IDF over their words, reduced together to a few dozen dimensions, and
grouped by k-means with the number of groups chosen by how well they stand apart (the silhouette): a group smaller
than ``min_size`` is noise, not a theme. Each group is named by its most distinctive words and phrases (class-based
TF-IDF: frequent in the group, rare in the others), and described by its size, how it spreads across the study's
groups of respondents and its transcripts, and its most representative quotes (those nearest its centre).
Deterministic: the same project gives the same candidates.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from qualcode.errors import ProjectError
from qualcode.project import Project
from qualcode.vocabulary import Verdict

SVD_DIMENSIONS = 24  # what the groups are made in: enough for themes, few enough for 10,000 segments in seconds
MAX_GROUPS = 30
CHOOSE_ON = 2000  # segments the number of groups is chosen on
TEXT_WEIGHT = 1.0  # the TF-IDF block's weight beside the sentence vectors' (each normalised first)
QUOTES = 5
MIN_SEGMENTS = 12  # fewer uncovered segments than this: nothing to group
STOP = frozenset("""a about above after again against all also am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself him himself his how i if in
into is it its itself just like me more most my myself no nor not now of off on once only or other our ours ourselves out over own really
same she should so some such than that the their theirs them themselves then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours yourself yourselves um uh yeah yes okay ok
know think mean sort kind things thing got get going go lot bit quite actually well say said just""".split())
_WORD = re.compile(r"[a-z][a-z-]*[a-z]")  # words without apostrophes: "it's", "don't" are not what a theme is about


@dataclass
class Quote:
    segment_id: int
    transcript: str
    segment: int  # its number among the transcript's respondent segments
    text: str


@dataclass
class Candidate:
    """A group of segments that say similar things, which the codebook may lack."""

    number: int  # 1-based, largest group first: what `codebook --add --only` takes
    name: str  # its most distinctive words and phrases
    keywords: list[str]
    phrases: list[str]
    size: int
    transcripts: int
    spread: dict[str, tuple[int, int]]  # group of respondents -> (segments, transcripts)
    quotes: list[Quote]
    cohesion: float  # mean cosine of its segments to its centre: how alike they are
    label: str = ""  # a language model's name for it, with --llm
    description: str = ""  # and its one-sentence description
    segment_ids: list[int] = field(default_factory=list)


@dataclass
class Discovery:
    candidates: list[Candidate]
    considered: int  # segments grouped
    noise: int  # of them, in no group
    attribute: str  # what ``spread`` is by
    groups: list[str]  # its values, in the study's order
    everything: bool  # every segment (--all), or those no code covers


def tokens(text: str) -> list[str]:
    return [word for word in _WORD.findall(re.sub(r"\w+['’]\w+", " ", text.lower())) if word not in STOP and len(word) > 2]


def uncovered(project: Project) -> list[int]:
    """The respondent segments no code covers: none accepted or added by a coder, none the machine says applies."""
    store = project.store
    covered = {segment_id for (segment_id, _code, _coder), decision in store.latest_decisions().items() if Verdict(decision.verdict).applies}
    covered |= {stored.segment_id for stored in store.suggestions(evidence=False) if stored.suggestion.says_yes}
    return [row.id for row in store.codable_segments() if row.id not in covered]


def discover(project: Project, *, everything: bool = False, min_size: int | None = None, seed: int = 0,
             on_progress: Callable[[str, int, int], None] | None = None) -> Discovery:
    """Candidate themes among the segments no code covers (``everything``: all respondent segments)."""
    store = project.store
    rows = {row.id: row for row in store.codable_segments()}
    numbers = store.segment_numbers()
    ids = list(rows) if everything else uncovered(project)
    texts = [rows[segment_id].text for segment_id in ids]
    attribute = "role"
    values = store.attribute_values([attribute])
    if len(ids) < MIN_SEGMENTS:
        return Discovery([], len(ids), len(ids), attribute, [], everything)
    progress = on_progress or (lambda stage, done, total: None)
    progress("discover", 0, 1)
    matrix = represent(project, texts, seed)
    size = min_size if min_size is not None else default_min_size(len(ids))
    labels = group(matrix, size, seed, on_step=lambda done, total: progress("discover", done, total + 1))
    found = describe(labels, matrix, ids, texts, size)
    from qualcode.analysis.counts import ordered_groups

    role_of = {transcript_id: (value[0] or "unknown") for transcript_id, value in values.items()}
    groups = ordered_groups({role_of[rows[segment_id].transcript_id] for segment_id in ids}, [attribute],
                            dict(project.settings.groups))
    candidates = []
    for number, (members, name, keywords, phrases, nearest, cohesion) in enumerate(found, start=1):
        spread: dict[str, tuple[int, int]] = {}
        for value in groups:
            inside = [segment_id for segment_id in members if role_of[rows[segment_id].transcript_id] == value]
            spread[value] = (len(inside), len({rows[segment_id].transcript_id for segment_id in inside}))
        quotes = [Quote(segment_id, rows[segment_id].transcript_id, numbers.get(segment_id, 0), rows[segment_id].text) for segment_id in nearest]
        candidates.append(Candidate(number, name, keywords, phrases, len(members), len({rows[i].transcript_id for i in members}), spread,
                                    quotes, cohesion, segment_ids=sorted(members)))
    progress("discover", 1, 1)
    noise = len(ids) - sum(candidate.size for candidate in candidates)
    return Discovery(candidates, len(ids), noise, attribute, groups, everything)


def default_min_size(count: int) -> int:
    """The smallest group worth calling a theme: 5 segments, or 1% of those grouped, whichever is more (at most 50)."""
    return max(5, min(50, round(count / 100)))


def represent(project: Project, texts: Sequence[str], seed: int = 0) -> Any:
    """Sentence vectors and TF-IDF, each normalised, side by side, reduced to ``SVD_DIMENSIONS`` and normalised."""
    import numpy as np

    settings = project.settings
    vectors = None
    if settings.vectors.value != "none":
        from qualcode.suggest.spec import pipeline_for
        from qualcode.suggest.vector_cache import cached_vectors

        vectors = np.array(cached_vectors(project.store, pipeline_for(project.codebook, settings), settings.vectors, list(texts)))
    return combine(texts, vectors, seed)


def combine(texts: Sequence[str], vectors: Any, seed: int = 0) -> Any:
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(tokenizer=tokens, token_pattern=None, lowercase=False, ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                            max_features=50_000)
    try:
        words = tfidf.fit_transform(texts)
    except ValueError:  # no word occurs twice: words cannot group anything
        words = csr_matrix((len(texts), 1))
    parts = [words * TEXT_WEIGHT]
    if vectors is not None:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        parts.append(csr_matrix(vectors / np.where(norms == 0, 1.0, norms)))
    joined = hstack(parts).tocsr()
    dimensions = max(1, min(SVD_DIMENSIONS, joined.shape[1] - 1, len(texts) - 1))
    reduced = TruncatedSVD(n_components=dimensions, random_state=seed, algorithm="randomized", n_iter=7).fit_transform(joined)
    norms = np.linalg.norm(reduced, axis=1, keepdims=True)
    return reduced / np.where(norms == 0, 1.0, norms)


def group(matrix: Any, min_size: int, seed: int = 0, on_step: Callable[[int, int], None] | None = None) -> Any:
    """Groups (labels from 0; -1: in no group). k-means for every number of groups from 2 to as many as ``min_size``
    allows (at most ``MAX_GROUPS``), keeping the number whose groups stand apart best (the silhouette, chosen on at most
    ``CHOOSE_ON`` segments); a group smaller than ``min_size`` is noise, not a theme.

    HDBSCAN and agglomerative clustering with a distance threshold were measured first (benchmarks/discover.py): on
    interview chunks a sentence or two long, HDBSCAN left three quarters of them as noise and found a quarter of the
    hidden themes; this finds nine in ten.
    """
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    count = len(matrix)
    # The number of groups is chosen on a sample (the same for every k), the groups then made with all the segments.
    sample = np.random.default_rng(seed).choice(count, size=min(count, CHOOSE_ON), replace=False) if count > CHOOSE_ON else np.arange(count)
    best: tuple[float, int] | None = None
    ks = range(2, max(2, min(MAX_GROUPS, count // max(1, min_size))) + 1)
    for k in ks:
        if on_step is not None:
            on_step(k - 1, len(ks) + 1)
        labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(matrix[sample])
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(matrix[sample], labels, metric="cosine"))
        if best is None or score > best[0] + 1e-9:
            best = (score, k)
    if best is None:
        return np.full(count, -1 if count < min_size else 0, dtype=int)
    labels = KMeans(n_clusters=best[1], n_init=4, random_state=seed).fit_predict(matrix)
    sizes = np.bincount(labels)
    return np.where(sizes[labels] >= min_size, labels, -1)


def describe(labels: Any, matrix: Any, ids: Sequence[int], texts: Sequence[str], min_size: int
             ) -> list[tuple[list[int], str, list[str], list[str], list[int], float]]:
    """Per group, largest first: its members, a name, keywords, phrases, the segments nearest its centre, its cohesion."""
    import numpy as np

    members: dict[int, list[int]] = defaultdict(list)
    for row, label in enumerate(labels):
        if label >= 0:
            members[int(label)].append(row)
    ordered = sorted(members.values(), key=lambda rows: (-len(rows), rows[0]))
    terms = class_terms([[texts[row] for row in rows] for rows in ordered])
    found = []
    for rows, (keywords, phrases) in zip(ordered, terms):
        if len(rows) < min_size:
            continue
        centre = matrix[rows].mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        cosines = matrix[rows] @ centre
        nearest = [ids[rows[index]] for index in np.argsort(-cosines, kind="stable")[:QUOTES]]
        name = " / ".join((phrases[:1] + [word for word in keywords if not any(word in phrase.split() for phrase in phrases[:1])])[:3]) or "(no words)"
        found.append(([ids[row] for row in rows], name, keywords, phrases, nearest, round(float(cosines.mean()), 3)))
    return found


def class_terms(groups: Sequence[Sequence[str]], keywords: int = 6, phrases: int = 3) -> list[tuple[list[str], list[str]]]:
    """Class-based TF-IDF: per group, the words (and two- and three-word phrases) frequent in it and rare in the others."""
    counts = []
    for texts in groups:
        counter: Counter = Counter()
        for text in texts:
            words = tokens(text)
            counter.update(set(words))  # in how many of the group's segments, not how often one says it
            counter.update({" ".join(words[i : i + 2]) for i in range(len(words) - 1)})
        counts.append(counter)
    total: Counter = Counter()
    for counter in counts:
        total.update(counter)
    average = sum(sum(counter.values()) for counter in counts) / max(1, len(counts))
    found = []
    for counter, texts in zip(counts, groups):
        size = max(1, len(texts))
        scored = sorted(((count / size) * math.log(1 + average / total[term]), term) for term, count in counter.items()
                        if count >= max(2, size // 10))
        scored.reverse()
        words = [term for _score, term in scored if " " not in term][:keywords]
        pairs = [term for _score, term in scored if " " in term][:phrases]
        found.append((words, pairs))
    return found


def name_with_llm(project: Project, discovery: Discovery) -> int:
    """Ask the study's language model to name and describe each candidate from its quotes; how many it named."""
    settings = project.settings.llm
    if settings is None:
        raise ProjectError("no language model is set up for this project", path=project.root,
                           fix="add an 'llm:' block to qualcode.yaml (see the README, 'Language models'), or run discover without --llm")
    import json

    from qualcode.suggest.chat import ChatClient, ChatFailed

    named = 0
    with ChatClient(settings) as client:
        for candidate in discovery.candidates:
            quotes = "\n".join(f"- {json.dumps(quote.text[:600], ensure_ascii=False)}" for quote in candidate.quotes)
            payload = [
                {"role": "system", "content": "You help a qualitative researcher develop a codebook. Reply with one JSON object and nothing "
                                              'else: {"name": "<a theme name of two to five words>", "description": "<one sentence: what '
                                              'segments of this theme talk about>"}'},
                {"role": "user", "content": f"Interview segments that a clustering grouped together (its most distinctive words: "
                                            f"{candidate.name}):\n{quotes}"},
            ]
            try:
                reply = client.complete(payload)
                data = json.loads(reply[reply.find("{") : reply.rfind("}") + 1])
            except (ChatFailed, ValueError):
                continue
            if isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"].strip():
                candidate.label = " ".join(data["name"].split())[:80]
                description = data.get("description")
                candidate.description = " ".join(description.split())[:400] if isinstance(description, str) else ""
                named += 1
    return named
