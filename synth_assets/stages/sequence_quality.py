"""Quality of a child table as sequences under its parents: what the per-table scores cannot see.

Each score is 1 − total variation distance between binned distributions, synthetic against training, with
the same score for the unseen validation rows as the ceiling (the binning of `quality.py`):
- sequence lengths: records per parent row (0 included; lengths beyond the stats' protected longest count
  as that one);
- coherence: how consecutive records of one subject relate. For every column, the joint distribution of
  (its bin in a record, its bin in the next record of the same parent), records ordered by `order_by`;
  the mean over columns. A generator that draws each record on its own, ignoring the one before, keeps
  every column's marginal and loses this (a person's age, income or visits from one year to the next);
- parent–child accuracy: for every pair of a parent column and a child column, the joint distribution
  over child rows; the mean over pairs;
- repeated order: the share of records whose first `order_by` value equals the previous record's of the same
  parent (training's share beside it: 0 for a panel, where a person has one record a year).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from synth_assets.stages.quality import SequenceQuality, _bin_codes, _mean, _similarity_of_counts
from synth_assets.stages.stats import TableStats, records_per_parent


def evaluate_sequences(
    child: TableStats,
    parent: TableStats,
    train: dict[str, pd.DataFrame],
    validation: dict[str, pd.DataFrame],
    synthetic: dict[str, pd.DataFrame],
    *,
    max_parents: int = 10_000,
    seed: int = 0,
) -> SequenceQuality:
    fk = next(fk for fk in child.foreign_keys if fk.references == parent.name)
    rng = np.random.default_rng(seed)
    n = min(max_parents, *(len(frames[parent.name]) for frames in (train, validation, synthetic)))
    if n == 0:
        raise ValueError(f"table '{child.name}': no parent rows to compare")
    # the same number of parents from each side, with all their records
    sides = []
    for frames in (train, validation, synthetic):
        parents = frames[parent.name]
        parents = parents.iloc[rng.choice(len(parents), size=n, replace=False)] if len(parents) > n else parents
        records = frames[child.name]
        records = records[records[fk.column].isin(parents[parent.primary_key])]
        sides.append((parents.reset_index(drop=True), _in_order(records, fk.column, child.order_by)))

    cap = max(child.sequence_lengths or {0: 1.0})
    lengths = [np.bincount(np.minimum(records_per_parent(records[fk.column], parents[parent.primary_key]), cap),
                           minlength=cap + 1) for parents, records in sides]
    columns = [child.columns[c] for c in child.column_order if c in child.columns]
    coherence = _coherence([records for _, records in sides], fk.column, columns)
    cross = _parent_child([_joined(records, parents, fk.column, parent.primary_key) for parents, records in sides],
                          [parent.columns[c] for c in parent.column_order if c in parent.columns], columns)
    repeated = [_repeated_order(records, fk.column, child.order_by) for _, records in sides]
    return SequenceQuality(
        parent=parent.name, parents_compared=n, repeated_order_share=repeated[2], training_repeated_order_share=repeated[0],
        length_accuracy=float(_similarity_of_counts(lengths[0], lengths[2])),
        holdout_length_accuracy=float(_similarity_of_counts(lengths[0], lengths[1])),
        mean_length=len(sides[2][1]) / n, training_mean_length=len(sides[0][1]) / n,
        coherence=coherence[1], holdout_coherence=coherence[0],
        parent_child_accuracy=cross[1], holdout_parent_child_accuracy=cross[0],
    )


def _in_order(records: pd.DataFrame, key: str, order_by: list[str]) -> pd.DataFrame:
    return records.sort_values([key, *order_by], kind="stable").reset_index(drop=True)


def _repeated_order(records: pd.DataFrame, key: str, order_by: list[str]) -> float | None:
    """Records (in order) whose first order value equals the previous record's of the same parent, as a share."""
    if not order_by or len(records) == 0:
        return None
    keys, order = records[key].to_numpy(), records[order_by[0]]
    same = (keys[1:] == keys[:-1]) & records[key].notna().to_numpy()[1:]
    repeats = same & (order.to_numpy()[1:] == order.to_numpy()[:-1]) & order.notna().to_numpy()[1:]
    return float(repeats.sum() / len(records))


def _coherence(frames: list[pd.DataFrame], key: str, columns: list) -> tuple[float, float]:
    """(holdout, synthetic): per column, 1 − TVD of (bin, next record's bin) pairs against training; mean."""
    if not columns:
        return float("nan"), float("nan")
    codes, n_codes = _bin_codes(frames, columns, frames[0])
    pairs = []
    for df, code in zip(frames, codes):
        same = (df[key].to_numpy()[1:] == df[key].to_numpy()[:-1]) & df[key].notna().to_numpy()[1:]
        pairs.append((code[:, :-1][:, same], code[:, 1:][:, same]))
    scores = {1: [], 2: []}
    for j, k in enumerate(n_codes):
        counts = [np.bincount(now[j] * k + after[j], minlength=k * k) for now, after in pairs]
        if counts[0].sum() == 0:
            continue  # no subject has two records
        for side in (1, 2):
            scores[side].append(float(_similarity_of_counts(counts[0], counts[side])))
    return _mean(scores[1]), _mean(scores[2])


def _joined(records: pd.DataFrame, parents: pd.DataFrame, key: str, parent_key: str) -> pd.DataFrame:
    """Child rows with their parent's columns beside them (prefixed `parent.`)."""
    renamed = parents.rename(columns=lambda c: c if c == parent_key else f"parent.{c}")
    return records.merge(renamed, left_on=key, right_on=parent_key, how="left", suffixes=("", "_parent"))


def _parent_child(frames: list[pd.DataFrame], parent_columns: list, child_columns: list) -> tuple[float, float]:
    """(holdout, synthetic): 1 − TVD of every (parent column, child column) joint distribution; mean."""
    if not parent_columns or not child_columns or any(len(df) == 0 for df in frames):
        return float("nan"), float("nan")
    renamed = [c.model_copy(update={"name": f"parent.{c.name}"}) for c in parent_columns]
    codes, n_codes = _bin_codes(frames, [*renamed, *child_columns], frames[0])
    p = len(renamed)
    scores = {1: [], 2: []}
    for i in range(p):
        for j in range(p, len(n_codes)):
            width = int(n_codes[j])
            counts = [np.bincount(code[i] * width + code[j], minlength=int(n_codes[i]) * width) for code in codes]
            for side in (1, 2):
                scores[side].append(float(_similarity_of_counts(counts[0], counts[side])))
    return _mean(scores[1]), _mean(scores[2])
