"""After training, each column's logits move by a constant per token, so that over the training rows the model's
mean prediction of every token (each column given the columns before it in data order, as unconditional
generation draws them) is the share of rows that hold it.

Training stops where the validation loss is lowest, and on small tables that is before the output layers' biases
have settled: on NAFLD's 1,280 training subjects the root model's mean prediction of 10-19 records was 0.311 where
0.236 of the subjects have them, and the judge scored the synthetic histories' lengths 0.897 (the reference engine
0.955). Calibrated, the same model's lengths scored 0.972 and the whole tree 0.860-0.864 against 0.848 (bench/
RESULTS.md). A flat table that trains to convergence hardly moves (diamonds 0.967 to 0.969).

The shares are the training rows' own, which the stats publish for categories anyway. Under differential privacy
those would spend ε, so a private model is calibrated instead to the shares its protected stats imply (categories'
noisy shares, numbers' noisy quantiles: `protected_shares`), against its own draws rather than the training rows
(`calibrate_to_protected_shares`): post-processing of what is private already, at no further cost in ε. DP-SGD's
noise leaves the marginals off (diamonds at ε 4: prices 0.93, depths 0.96 where the same judge gives a non-private
model 0.99); calibrated, six such models' univariate scores rose by 0.005 to 0.024 and their accuracy by 0.001 to
0.016, 0.006 on average (bench/RESULTS.md, differential privacy IV)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from synth_assets.plugin_api import TableStats
from synth_tabular_argn.encoding import ColumnCode

# a sample of the training rows is enough for shares of a few percent, and bounds the passes' time
MAX_ROWS = 50_000
# each pass moves every column's logits by log(share / mean prediction); the passes are independent per column
# (teacher forcing feeds the real tokens), and three bring the mean predictions within a few thousandths
PASSES = 3
MAX_SHIFT = 5.0  # in nats, either way: no token is forced in or ruled out beyond what the network learned
BATCH = 4_096
OWN_DRAWS = 20_000  # rows a private model draws per pass: a share of 0.5% is then about 100 rows' worth
# a number is calibrated to its noisy quantiles only where they are this close (ColumnStats.quantile_noise, a share of
# the mass): on 2,400 diamonds at ε 4 (noise 0.09 to 0.85) calibration moved the judge's accuracy by +0.016 and
# -0.025 in two runs (prices' univariate score 0.885 -> 0.634); on 34,500 (0.007 to 0.056) +0.001 to +0.016 in six
MAX_QUANTILE_NOISE = 0.075


def calibrate_output_biases(model, tokens: np.ndarray, given: int = 0, *, seed: int = 0) -> float:
    """Shift the output biases of `model`'s columns (all but the first `given`, a child model's context) so their
    mean predictions over `tokens` (training rows) match the tokens' shares. Returns the largest shift, in nats."""
    import torch

    if len(tokens) > MAX_ROWS:
        tokens = tokens[np.sort(np.random.default_rng(seed).choice(len(tokens), MAX_ROWS, replace=False))]
    columns = range(given, tokens.shape[1])
    cardinalities = model.cardinalities
    shares = {i: np.bincount(tokens[:, i].astype(np.int64), minlength=cardinalities[i]) / len(tokens)
              for i in columns}
    total = {i: np.zeros(cardinalities[i]) for i in columns}
    model.eval()
    order = torch.arange(tokens.shape[1], device=model.owner.device)
    for _ in range(PASSES):
        means = _mean_predictions(model, tokens, order, given, columns)
        for i in columns:
            # a token no sampled row holds (a null or rare token the column does not use) goes down MAX_SHIFT
            _shift(model, i, shares[i], means[i], total)
    return max((float(np.abs(t).max()) for t in total.values()), default=0.0)


def calibrate_to_protected_shares(model, draw: Callable[[int], np.ndarray], shares: dict[int, np.ndarray],
                                  passes: int = PASSES + 1) -> float:
    """Shift the output biases of the sub-columns in `shares` (index -> each token's share) so the model's own
    draws hold those shares. `draw(k)` draws rows of tokens for pass k (OWN_DRAWS of them, as generation does);
    each pass draws again, as a shift of one column moves those drawn after it. Returns the largest shift."""
    import torch

    total = {i: np.zeros(len(target)) for i, target in shares.items()}
    order = torch.arange(model.n_columns, device=model.owner.device)
    for k in range(passes):
        # the mean prediction over the model's own draws is its marginal, with less noise than counting tokens
        means = _mean_predictions(model, draw(k), order, 0, list(shares))
        for i, target in shares.items():
            _shift(model, i, target, means[i], total)
    return max((float(np.abs(t).max()) for t in total.values()), default=0.0)


def _shift(model, i: int, target: np.ndarray, mean: np.ndarray, total: dict[int, np.ndarray]) -> None:
    """Move sub-column i's logits by log(target / mean prediction), keeping its shifts' sum within MAX_SHIFT."""
    import torch

    shift = np.log(np.maximum(target, 1e-12)) - np.log(np.maximum(mean, 1e-12))
    shift = np.clip(total[i] + shift, -MAX_SHIFT, MAX_SHIFT) - total[i]
    total[i] += shift
    model.shift_output_bias(i, torch.as_tensor(shift, dtype=torch.float32))


def protected_shares(codes: list[ColumnCode], table: TableStats, first_sub_columns: dict[str, int],
                     marginal: Callable[[ColumnCode], np.ndarray]) -> dict[int, np.ndarray]:
    """Each column's first sub-column (index) with the share of each of its tokens that the protected stats imply:
    a category's (`marginal`, the planner's), a continuous number's leading digits' and quantile bins' from its
    quantiles (their distribution function, linear between them). Columns whose shares the stats do not tell
    (dates, codes, text, discrete numbers, numbers with exact values of their own, or with quantiles too noisy:
    MAX_QUANTILE_NOISE) are left out."""
    out = {}
    for code in codes:
        stats = table.columns.get(code.column)
        if stats is None:
            continue
        # a discrete number's shares leave out the values too few hold, which its encoding moves to the nearest
        # kept one: matched to them in a trial, rwm5yr's doctor visits lost their tail (univariate 0.966 -> 0.934)
        if code.encoding == "categorical" and stats.category_shares:
            out[first_sub_columns[code.column]] = marginal(code)
        elif code.encoding in ("numeric_digit", "numeric_binned") and stats.quantiles and not code.exact \
                and (stats.quantile_noise or 0.0) <= MAX_QUANTILE_NOISE:
            out[first_sub_columns[code.column]] = _number_shares(code, stats)
    return out


def _number_shares(code: ColumnCode, stats) -> np.ndarray:
    """A number's first sub-column: null and infinities as the stats hold them, then each token's range of values
    (a leading digit's, a bin's) weighed by the quantiles' distribution function."""
    if code.encoding == "numeric_digit":
        scale, step = 10.0**code.decimals, 10**code.digit_top
        starts = code.digit_base + step * np.arange(code.digit_top_size + 1)
        edges = (starts - 0.5) / scale  # a value rounds to its grid point: half a step either side
    else:
        edges = np.asarray(code.edges, dtype=float)
    cdf = _distribution(stats.quantiles)(edges)
    cdf[0], cdf[-1] = 0.0, 1.0  # what lies beyond the outer tokens is clipped into them
    mass = np.diff(cdf)
    infinite = [(stats.infinite_shares or {}).get(name, 0.0) for name in code.infinities]
    present = max(1.0 - stats.null_share - sum(infinite), 0.0)
    head = ([stats.null_share] if code.has_null else []) + infinite + ([0.0] if code.has_rare else [])
    shares = np.asarray(head + list(present * mass), dtype=float)
    return shares / shares.sum()


def _distribution(quantiles: list[float]) -> Callable[[np.ndarray], np.ndarray]:
    """The distribution function the quantiles (0 to 100 percent) describe, linear between them; a value many
    quantiles share (a heaped value) holds their mass at that value."""
    q = np.asarray(quantiles, dtype=float)
    levels = np.linspace(0.0, 1.0, len(q))
    values, first = np.unique(q, return_index=True)
    last = len(q) - 1 - np.unique(q[::-1], return_index=True)[1]
    # a step at each value many quantiles share: just below it the lowest level, at it the highest
    xs = np.ravel(np.column_stack([np.nextafter(values, -np.inf), values]))
    ys = np.ravel(np.column_stack([levels[first], levels[last]]))
    return lambda x: np.interp(x, xs, ys)


def _mean_predictions(model, tokens: np.ndarray, order, given: int, columns) -> dict[int, np.ndarray]:
    """Each column's predicted token probabilities, averaged over the rows, given the real tokens before it."""
    import torch

    from synth_tabular_argn.model import WIDE_EVAL_ELEMENTS

    sums = {i: np.zeros(model.cardinalities[i]) for i in columns}
    batch = BATCH
    if model.variant != "per_head":  # the wide network holds every column's hidden layer at once (columns x rows x H)
        limit = WIDE_EVAL_ELEMENTS["cuda" if order.is_cuda else "cpu"]
        batch = max(1, min(BATCH, limit // (model.n_columns * model.hidden[0])))
    with torch.no_grad():
        for start in range(0, len(tokens), batch):
            part = torch.as_tensor(tokens[start : start + batch].astype(np.int64), device=order.device)
            logits = model.forward(part, order, given) if model.variant == "per_head" else model.forward(part, order)
            for i in columns:
                sums[i] += torch.softmax(logits[i].float(), dim=1).sum(0).cpu().numpy()
    return {i: s / len(tokens) for i, s in sums.items()}
