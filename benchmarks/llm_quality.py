"""A language model's suggestions on public human-coded data, beside qualcode's offline suggestions, and the client's
own overhead.

1. Quality, when ``QUALCODE_LLM_ENDPOINT`` names a reachable OpenAI-compatible endpoint (and ``QUALCODE_LLM_MODEL`` its
   model; ``QUALCODE_LLM_KEY_ENV`` the variable holding a key, if it needs one): Du Bois and the Scrum themes (the
   careful codebook of benchmarks/codebooks/scrum_themes.yaml), at 0% and 20% reviewed, the few-shot examples drawn
   from the reviewed part by sentence-vector similarity as `qualcode code` draws them. Mean per-code kappa on the
   unreviewed units over splits (mean ± standard error), beside the rules and the learned models on the same splits.
   Without a reachable endpoint it says so and prints no quality figure: no language model runs on the project's own
   machines, and no figure is printed that was not measured.
2. Overhead, always: requests per second through qualcode's client and component against a local test server that
   answers at once (tests/chat_server.py), at concurrency 1, 4 and 16, against bare HTTP posts with the same client
   library measured in the same run: what qualcode adds to a request, not what a model costs.

Run: .venv/bin/python benchmarks/llm_quality.py [--splits 3] [--units 200] [--requests 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from chat_server import ChatServer, Reply, answer_of  # noqa: E402

from qualcode.codebook import parse_codebook  # noqa: E402
from qualcode.settings import LlmSettings  # noqa: E402
from qualcode.suggest.llm import EXAMPLES_EXTENSION, QUESTION_EXTENSION, MemoryCache, llm_pipeline  # noqa: E402
from qualcode.suggest.prompt import Example, handled_codes  # noqa: E402


def overhead(total: int) -> None:
    import httpx

    def instant(body: dict, attempt: int, headers: dict) -> Reply:
        text = answer_of(body) if body.get("messages") else ""
        return Reply(content=json.dumps({"codes": [{"code": "timescale", "confidence": 0.9, "evidence": "deadline"}] if "deadline" in text else []}))

    codebook = parse_codebook("codes:\n  - id: timescale\n    label: Timescale\n    keywords: [deadline]\n")
    texts = [f"Answer {i}: the deadline came and went, and we carried on with the work." for i in range(total)]
    print(f"Client overhead against a local test server that answers at once ({total} segments; requests/s, best of 3):")
    print(f"{'concurrency':>12} {'bare httpx posts':>18} {'qualcode component':>20} {'ratio':>7}")
    with ChatServer(instant) as server:
        for concurrency in (1, 4, 16):
            bare_rates, ours_rates = [], []
            for _round in range(3):
                bare_rates.append(_bare(httpx, server.url, texts, concurrency))
                settings = LlmSettings(endpoint=server.url, model="m", concurrency=concurrency, timeout=30)
                nlp, component, client = llm_pipeline(settings, handled_codes(codebook, ()), MemoryCache())
                docs = [nlp.make_doc(text) for text in texts]
                started = time.perf_counter()
                with client:
                    list(component.pipe(docs, batch_size=max(64, concurrency * 4)))
                ours_rates.append(total / (time.perf_counter() - started))
                assert component.counts.asked == total and component.counts.failed == 0
            bare, ours = max(bare_rates), max(ours_rates)
            print(f"{concurrency:>12} {bare:>18,.0f} {ours:>20,.0f} {ours / bare:>7.2f}")


def _bare(httpx: object, url: str, texts: list[str], concurrency: int) -> float:
    """Requests per second of plain posts of the same size, through the same library, with no checking or filing."""
    from concurrent.futures import ThreadPoolExecutor

    payload = {"model": "m", "messages": [{"role": "user", "content": f'The answer to code: "{texts[0]}"'}]}
    with httpx.Client(base_url=url + "/", limits=httpx.Limits(max_connections=concurrency), trust_env=False) as client:  # type: ignore[attr-defined]

        def post(_index: int) -> object:
            return client.post("chat/completions", json=payload).json()

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, range(len(texts))))
        return len(texts) / (time.perf_counter() - started)


def reachable(endpoint: str) -> str | None:
    import httpx

    try:
        httpx.get(endpoint.rstrip("/") + "/models", timeout=5, trust_env=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return None


def quality(endpoint: str, model: str, key_env: str | None, splits: int, units: int) -> None:
    import random

    from quality import CAREFUL_CODEBOOK, Dataset, kappa, load_dubois, load_scrum, mean_se

    settings = LlmSettings(endpoint=endpoint, model=model, api_key_env=key_env, concurrency=int(os.environ.get("QUALCODE_LLM_CONCURRENCY", "4")),
                           timeout=300, allow_remote=True)
    for name, loaded in (("Du Bois", load_dubois()), ("Scrum themes, careful codebook",
                                                       load_scrum("theme", 1, CAREFUL_CODEBOOK.read_text(encoding="utf-8")))):
        texts, labels, codebook_text, contexts = loaded
        data = Dataset(name, texts, labels, codebook_text)
        codebook = parse_codebook(codebook_text)
        codes = [code for code in handled_codes(codebook, ()) if code.id in data.codes]
        cache = MemoryCache()
        nlp, component, client = llm_pipeline(settings, codes, cache)
        results: dict[float, dict[str, list[float]]] = {}
        with client:
            for fraction in (0.0, 0.2):
                scores: dict[str, list[float]] = {"llm": [], "rules": [], "learned": []}
                for split in range(splits):
                    order = list(range(len(texts)))
                    random.Random(split).shuffle(order)
                    reviewed = order[: int(round(fraction * len(order)))]
                    rest = order[len(reviewed):][:units]
                    docs = []
                    for unit in rest:
                        doc = nlp.make_doc(texts[unit])
                        doc._.set(QUESTION_EXTENSION, contexts[unit][0])
                        doc._.set(EXAMPLES_EXTENSION, _examples(data, reviewed, unit, settings.examples))
                        docs.append(doc)
                    answered = list(component.pipe(docs))
                    said = {code: [int(any(span.label_ == code for span in doc.spans["qualcode_llm"])) for doc in answered] for code in data.codes}
                    models = data.fit(reviewed, split) if reviewed else None
                    machine = data.machine(models, rest)
                    alone = data.machine(None, rest)
                    for label, values in (("llm", said), ("learned", machine), ("rules", alone)):
                        scores[label].append(statistics.mean(kappa([labels[code][i] for i in rest], values[code]) for code in data.codes))
                results[fraction] = scores
        print(f"\n## {name}: {len(texts)} units, {len(data.codes)} codes, {splits} splits of up to {units} unreviewed units; model {model}")
        print(f"{'reviewed':>9} | {'llm':>15} | {'rules':>15} | {'learned':>15}")
        for fraction, scores in results.items():
            print(f"{int(fraction * 100):>8}% | {mean_se(scores['llm']):>15} | {mean_se(scores['rules']):>15} | {mean_se(scores['learned']):>15}")
        counts = component.counts
        print(f"asked {counts.asked}, failed {counts.failed}, malformed {counts.malformed}, invented quotes dropped {counts.invented}, "
              f"unknown codes dropped {counts.unknown}")


def _examples(data: object, reviewed: list[int], unit: int, count: int) -> list[Example]:
    if not reviewed or not count:
        return []
    matrix = data.vector_matrix  # type: ignore[attr-defined]
    ranked = sorted(reviewed, key=lambda other: -float(matrix[unit] @ matrix[other]))[:count]
    labels = data.labels  # type: ignore[attr-defined]
    return [Example(data.texts[other], [code for code in labels if labels[code][other]], [])  # type: ignore[attr-defined]
            for other in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--units", type=int, default=200, help="unreviewed units scored per split (each is one request)")
    parser.add_argument("--requests", type=int, default=400, help="requests per overhead measurement")
    args = parser.parse_args()
    overhead(args.requests)
    endpoint = os.environ.get("QUALCODE_LLM_ENDPOINT")
    if not endpoint:
        print("\nQuality: QUALCODE_LLM_ENDPOINT is not set, so no language model was asked and no quality figure is printed.")
        return
    problem = reachable(endpoint)
    if problem is not None:
        print(f"\nQuality: the endpoint {endpoint} cannot be reached ({problem}); no quality figure is printed.")
        return
    quality(endpoint, os.environ.get("QUALCODE_LLM_MODEL", "llama3.1:8b"), os.environ.get("QUALCODE_LLM_KEY_ENV"), args.splits, args.units)


if __name__ == "__main__":
    main()
