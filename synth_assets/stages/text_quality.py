"""Quality of free-text columns: how long the texts are, which words they use, how many are copies of a training
text (beside the same share for real holdout texts), and a few written texts beside real ones.

Each figure is the synthetic texts' against the training texts, with the holdout's as its ceiling, as the
accuracy of the other columns is. Similarities are 1 − total variation distance, between histograms of lengths
(bins of the training texts' length quantiles) and between word frequencies (the training texts' most frequent
words, the rest as one).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
from pydantic import BaseModel

from synth_assets.free_text import words

LENGTH_BINS = 10
TOP_WORDS = 500
SAMPLES = 5  # written texts shown beside as many real ones


class TextQuality(BaseModel):
    column: str
    mean_characters: float
    training_mean_characters: float
    mean_words: float
    training_mean_words: float
    length_similarity: float
    holdout_length_similarity: float
    word_similarity: float
    holdout_word_similarity: float
    exact_copy_share: float  # of the written texts, those identical to a training text
    holdout_exact_copy_share: float  # of real unseen texts, those identical to a training text
    samples: list[str]
    real_samples: list[str]


def text_quality(column: str, train: pd.Series, holdout: pd.Series, synthetic: pd.Series, *,
                 every_training_text: pd.Series | None = None, seed: int = 0) -> TextQuality:
    """`train`, `holdout` and `synthetic`: as many texts of each (a sample); copies are looked up among
    `every_training_text` (default: `train`)."""
    tr, ho, sy = (_texts(s) for s in (train, holdout, synthetic))
    if tr.empty or sy.empty:
        raise ValueError("no text to compare (every cell empty)")
    edges = np.unique(np.quantile(tr.str.len(), np.linspace(0, 1, LENGTH_BINS + 1)))
    top = [w for w, _ in _word_counts(tr).most_common(TOP_WORDS)]
    seen = set(_texts(every_training_text)) if every_training_text is not None else set(tr)
    rng = np.random.default_rng(seed)
    return TextQuality(
        column=column,
        mean_characters=float(sy.str.len().mean()), training_mean_characters=float(tr.str.len().mean()),
        mean_words=float(sy.map(lambda t: len(words(t))).mean()),
        training_mean_words=float(tr.map(lambda t: len(words(t))).mean()),
        length_similarity=_similarity(_length_shares(tr, edges), _length_shares(sy, edges)),
        holdout_length_similarity=_similarity(_length_shares(tr, edges), _length_shares(ho, edges)),
        word_similarity=_similarity(_word_shares(tr, top), _word_shares(sy, top)),
        holdout_word_similarity=_similarity(_word_shares(tr, top), _word_shares(ho, top)),
        exact_copy_share=float(sy.isin(seen).mean()),
        holdout_exact_copy_share=float(ho.isin(seen).mean()) if len(ho) else float("nan"),
        samples=_pick(sy, rng), real_samples=_pick(ho if len(ho) else tr, rng))


def _texts(values: pd.Series) -> pd.Series:
    present = values.dropna()
    return present.astype(str).reset_index(drop=True)


def _word_counts(texts: pd.Series) -> Counter:
    counts: Counter = Counter()
    for text in texts:
        counts.update(words(text))
    return counts


def _word_shares(texts: pd.Series, top: list[str]) -> np.ndarray:
    counts = _word_counts(texts)
    held = np.array([counts.get(w, 0) for w in top] + [sum(counts.values()) - sum(counts.get(w, 0) for w in top)],
                    dtype=float)
    return held / max(held.sum(), 1.0)


def _length_shares(texts: pd.Series, edges: np.ndarray) -> np.ndarray:
    if len(texts) == 0:
        return np.zeros(max(len(edges) + 1, 1))
    codes = np.searchsorted(edges, texts.str.len().to_numpy(), side="right")
    counts = np.bincount(codes, minlength=len(edges) + 1).astype(float)
    return counts / counts.sum()


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    if a.sum() == 0 or b.sum() == 0:
        return float("nan")
    return float(1 - 0.5 * np.abs(a - b).sum())


def _pick(texts: pd.Series, rng: np.random.Generator) -> list[str]:
    chosen = rng.choice(len(texts), size=min(SAMPLES, len(texts)), replace=False)
    return [texts.iloc[int(i)] for i in chosen]


def text_features(a: pd.Series, b: pd.Series, top: int = 10) -> list[np.ndarray]:
    """What the discriminator sees of a text column, rows of `a` then of `b`: the length in characters and in
    words, and how often each of the real texts' most frequent words and character trigrams occurs."""
    texts = pd.concat([a, b], ignore_index=True).astype("string")
    present = texts.fillna("")
    features = [texts.str.len().astype(float).to_numpy(na_value=np.nan),
                np.where(texts.isna(), np.nan, present.map(lambda t: len(words(t))).to_numpy(dtype=float))]
    common_words = [w for w, _ in _word_counts(_texts(a)).most_common(top)]
    trigrams: Counter = Counter()
    for text in _texts(a):
        trigrams.update(text[i:i + 3] for i in range(len(text) - 2))
    lowered = present.str.lower()
    for word in common_words:
        features.append(present.map(lambda t, w=word: words(t).count(w)).to_numpy(dtype=float))
    for gram, _ in trigrams.most_common(top):
        features.append(lowered.str.count(re.escape(gram.lower())).to_numpy(dtype=float))
    return features
