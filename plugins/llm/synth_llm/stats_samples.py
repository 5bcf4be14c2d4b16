"""Tables drawn from the stats alone, each column on its own: what a tokenizer may learn from under differential
privacy. A byte-pair tokenizer trained on the real samples would hold merges of what enough of them share, an
unprotected statistic of the data; trained on these tables it learns the JSON keys, the kept values and the
numbers' shapes, all post-processing of the protected stats, so it costs no ε.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.plugin_api import RARE_TOKEN, ColumnStats, DatasetStats, context_key, cut_at_word, parent_first

MAX_ROWS = 20_000  # root rows drawn at most: enough for the merges, few enough to tokenize in seconds


def stats_frames(stats: DatasetStats, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Every table with its modelled columns drawn from their stats and keys linking children to parents, as many
    root rows as training has (at most MAX_ROWS), and records per parent from the sequence lengths."""
    out: dict[str, pd.DataFrame] = {}
    for name in parent_first(stats.tables):
        table = stats.tables[name]
        fk = context_key(name, table)
        if fk is None:
            rows, parents = min(max(table.rows, 1), MAX_ROWS), None
        else:
            lengths = table.sequence_lengths or {1: 1.0}
            counts = rng.choice(list(lengths), size=len(out[fk.references]), p=_normalised(list(lengths.values())))
            parents = np.repeat(out[fk.references][stats.tables[fk.references].primary_key].to_numpy(), counts)
            rows = len(parents)
        df = pd.DataFrame({c: column_values(table.columns[c], rows, rng)
                           for c in table.column_order if c in table.columns}, index=pd.RangeIndex(rows))
        if table.primary_key:
            df[table.primary_key] = np.arange(rows)
        if fk is not None:
            df[fk.column] = parents
        out[name] = df
    return out


def column_values(col: ColumnStats, rows: int, rng: np.random.Generator) -> pd.Series:
    """`rows` values of one column, drawn from its kept values and shares, or between its quantiles; nulls at the
    column's null share."""
    if col.text_form == "text":
        values = pd.Series(_texts_of_kept_words(col, rows, rng), dtype=object)
    elif col.kind == "categorical" and col.text_form == "code":
        characters = [kept or "x" for kept in col.characters or []] or ["x"]
        values = pd.Series(["".join(rng.choice(list(kept)) for kept in characters) for _ in range(rows)], dtype=object)
    elif col.categories and (col.kind == "categorical" or col.discrete):
        choices = [*col.categories, RARE_TOKEN] if col.kind == "categorical" and col.rare_share > 0 else list(col.categories)
        shares = [*(col.category_shares or [1.0] * len(col.categories)), *([col.rare_share] if len(choices) > len(col.categories) else [])]
        values = pd.Series(np.asarray(choices, dtype=object)[rng.choice(len(choices), size=rows, p=_normalised(shares))],
                           dtype=object)
    elif col.kind == "categorical":
        values = pd.Series([RARE_TOKEN] * rows, dtype=object)
    else:
        quantiles = np.asarray(col.quantiles or [col.min, col.max], dtype=float)
        numbers = np.interp(rng.random(rows), np.linspace(0, 1, len(quantiles)), quantiles)
        values = pd.Series(pd.to_datetime(np.round(numbers).astype("int64"), unit="ns")) if col.kind == "datetime" \
            else pd.Series(numbers)
    return values.where(rng.random(rows) >= col.null_share, None) if col.null_share > 0 else values


def _texts_of_kept_words(col: ColumnStats, rows: int, rng: np.random.Generator) -> list[str]:
    """`rows` texts of kept words (most held first, so drawn more often), each about a length drawn from the
    length's quantiles, in the casings texts write, between single spaces, cut at a word to the protected length.
    The words are drawn all at once: a draw per word with the vocabulary's probabilities took a pass over the
    whole vocabulary each time."""
    kept = np.asarray(col.words or [], dtype=object)
    if not len(kept):
        return [""] * rows
    quantiles = np.asarray(col.text_lengths or [col.max_length or 1], dtype=float)
    lengths = np.interp(rng.random(rows), np.linspace(0, 1, len(quantiles)), quantiles)
    weights = 1.0 / np.arange(1, len(kept) + 1)  # Zipf: the order is all the stats say of how often
    drawn = kept[rng.choice(len(kept), size=max(rows, 1) * 8, p=weights / weights.sum())]
    average = float(np.mean([len(w) for w in drawn])) + 1.0  # a word and its space
    counts = np.clip(np.ceil(lengths / average), 1, 8).astype(int)
    words = [w.capitalize() if up else w for w, up in zip(drawn, rng.random(len(drawn)) < 0.5)]
    ends = np.cumsum(counts)
    return [cut_at_word(" ".join(words[end - n : end]), col.max_length or 0) for n, end in zip(counts, ends)]


def _normalised(shares: list[float]) -> np.ndarray:
    shares = np.clip(np.asarray(shares, dtype=float), 0, None)
    return shares / shares.sum() if shares.sum() > 0 else np.full(len(shares), 1.0 / len(shares))
