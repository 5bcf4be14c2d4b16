"""Charts for the quality report and the model, as PNG files (matplotlib, imported only when drawing):

- each column's distribution for training, synthetic and holdout rows side by side;
- the association between every pair of columns (Cramér's V of the binned values) for the three;
- the accuracy per column, with the holdout ceiling;
- the loss curve of a training.

The bins are those the accuracy scores (quality.labelled_bins): up to 10 most frequent categories (and "other"),
deciles of the training data for continuous numbers and dates, the shape of codes (`AB-1234` → `AA-9999`), a grid
of quantile ranges for lat/long pairs; nulls get a bin of their own.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from synth_assets.stages.quality import TableQuality, labelled_bins
from synth_assets.stages.stats import ColumnStats, TableStats

SERIES = ("training", "synthetic", "holdout")
COLOURS = {"training": "#4c72b0", "synthetic": "#dd8452", "holdout": "#8c8c8c"}
MAX_COLUMNS = 16  # small multiples beyond this stop being readable; the worst columns come first


def binned(column: ColumnStats, frames: list[pd.Series]) -> tuple[list[str], list[np.ndarray]]:
    """Bin labels (shortened), and each series' bin index per row, binned by the first (training) series."""
    labels, codes = labelled_bins(frames, column, frames[0])
    return [_short(label) for label in labels], codes


def _short(value: str, width: int = 14) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    return np.bincount(codes, minlength=n_bins)[:n_bins] / max(len(codes), 1)


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Association of two binned columns, 0 (none) to 1 (one determines the other)."""
    width = int(b.max()) + 1 if len(b) else 1
    table = np.bincount(a * width + b, minlength=(int(a.max()) + 1 if len(a) else 1) * width).reshape(-1, width)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0].astype(float)
    if min(table.shape) < 2:
        return 0.0
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) @ table.sum(axis=0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / np.where(expected > 0, expected, 1)).sum()
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=80)


def _png(plt, figure, tight: bool = True, **savefig) -> bytes:
    """The figure as PNG bytes, laid out by tight_layout unless `tight` is False (a layout of its own)."""
    buffer = io.BytesIO()
    if tight:
        figure.tight_layout()
    figure.savefig(buffer, format="png", **savefig)
    plt.close(figure)
    return buffer.getvalue()


def table_charts(stats: TableStats, train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame,
                 quality: TableQuality, *, max_rows: int = 10_000, seed: int = 0) -> dict[str, bytes]:
    """`distributions`, `correlations`, `accuracy` (and with privacy figures, `privacy`) charts of one table, as
    PNG bytes."""
    rng = np.random.default_rng(seed)
    frames = [df if len(df) <= max_rows else df.iloc[rng.choice(len(df), max_rows, replace=False)]
              for df in (train, synthetic, holdout)]
    # the columns that differ most first
    columns = sorted(stats.columns.values(), key=lambda c: quality.columns.get(c.name, 1.0))[:MAX_COLUMNS]
    bins = {c.name: binned(c, [df[c.name].reset_index(drop=True) for df in frames]) for c in columns}
    charts = {}
    if columns:  # a table holding only keys has nothing to chart but its privacy figures
        charts = {"distributions": _distributions(columns, bins), "correlations": _correlations(columns, bins),
                  "accuracy": _accuracy(quality)}
    if quality.privacy:
        charts["privacy"] = privacy_chart(quality.privacy)
    return charts


def _distributions(columns: list[ColumnStats], bins: dict) -> bytes:
    n = len(columns)
    across = min(n, 4)
    down = int(np.ceil(n / across))
    plt, figure = _figure(4.2 * across, 3.0 * down)
    _grid_margins(figure, across, down)
    for i, column in enumerate(columns, start=1):
        labels, codes = bins[column.name]
        keep = [j for j in range(len(labels)) if any(shares(c, len(labels))[j] > 0 for c in codes)]
        ax = figure.add_subplot(down, across, i)
        x = np.arange(len(keep))
        for k, (series, series_codes) in enumerate(zip(SERIES, codes)):
            ax.bar(x + (k - 1) * 0.27, shares(series_codes, len(labels))[keep], width=0.27, label=series,
                   color=COLOURS[series])
        ax.set_title(column.name, fontsize=10)
        ax.set_xticks(x, [labels[j] for j in keep], rotation=60, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if i == 1:
            ax.legend(fontsize=7)
    return _png(plt, figure, tight=False)


# room around each small multiple, in inches: its labels are at most 14 characters of 7 points, turned 60 degrees
# (0.8 in below the axes with the ticks, half that to the left of the first bar), its title 10 points above it
GRID_MARGINS = {"left": 0.5, "right": 0.1, "top": 0.3, "bottom": 1.0, "across": 0.5, "down": 1.3}


def _grid_margins(figure, across: int, down: int) -> None:
    """Fixed margins for a grid of small multiples. tight_layout measured every label of every axes first: a
    third of the time of a 16-column chart, the quality stage's largest cost."""
    m = GRID_MARGINS
    width, height = figure.get_size_inches()
    axes_width = (width - m["left"] - m["right"] - (across - 1) * m["across"]) / across
    axes_height = (height - m["top"] - m["bottom"] - (down - 1) * m["down"]) / down
    figure.subplots_adjust(left=m["left"] / width, right=1 - m["right"] / width, top=1 - m["top"] / height,
                           bottom=m["bottom"] / height, wspace=m["across"] / axes_width,
                           hspace=m["down"] / axes_height)


def _correlations(columns: list[ColumnStats], bins: dict) -> bytes:
    names = [c.name for c in columns]
    plt, figure = _figure(4.0 * 3 + 1, 4.0)
    for k, series in enumerate(SERIES):
        matrix = np.eye(len(names))
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                matrix[i, j] = matrix[j, i] = cramers_v(bins[names[i]][1][k], bins[names[j]][1][k])
        ax = figure.add_subplot(1, 3, k + 1)
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(series, fontsize=10)
        ax.set_xticks(range(len(names)), [_short(n, 10) for n in names], rotation=70, fontsize=7)
        ax.set_yticks(range(len(names)), [_short(n, 10) for n in names], fontsize=7)
    figure.colorbar(image, ax=figure.axes, shrink=0.8, label="Cramér's V")
    return _png(plt, figure, tight=False, bbox_inches="tight")  # tight_layout cannot place the shared colour bar


def _accuracy(quality: TableQuality) -> bytes:
    names = sorted(quality.columns, key=lambda n: quality.columns[n])
    plt, figure = _figure(7.0, 0.9 + 0.28 * len(names))
    ax = figure.add_subplot(1, 1, 1)
    y = np.arange(len(names))
    ax.barh(y - 0.2, [quality.columns[n] for n in names], height=0.4, label="synthetic", color=COLOURS["synthetic"])
    ax.barh(y + 0.2, [quality.holdout_columns.get(n, np.nan) for n in names], height=0.4,
            label="holdout (ceiling)", color=COLOURS["holdout"])
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("univariate accuracy (1 − total variation distance to training)")
    ax.legend(fontsize=8, loc="lower left")  # scores sit near 1, on the right
    return _png(plt, figure)


def privacy_chart(figures: dict) -> bytes:
    """Each privacy figure beside its baseline, real unseen data judged the same way: the gap is the risk."""
    rows = [("DCR share", figures["dcr_share"], figures["dcr_floor"]),
            ("membership AUC", figures["membership_auc"], 0.5),
            ("exact copies", figures["exact_copy_share"], figures["holdout_exact_copy_share"])]
    rows += [(f"infer {key.split('/')[1]}", value, figures[f"{key}/holdout"])
             for key, value in figures.items() if key.startswith("attribute_inference/") and key.count("/") == 1]
    plt, figure = _figure(7.0, 0.9 + 0.45 * len(rows))
    ax = figure.add_subplot(1, 1, 1)
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r[1] for r in rows], height=0.4, label="synthetic", color=COLOURS["synthetic"])
    ax.barh(y + 0.2, [r[2] for r in rows], height=0.4, label="baseline: real unseen data", color=COLOURS["holdout"])
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("synthetic against its baseline (a gap is a risk)")
    ax.legend(fontsize=8, loc="lower right")
    return _png(plt, figure)


def loss_curve(progress: list[dict]) -> bytes | None:
    """Training and validation loss per epoch; None without epochs."""
    if not progress:
        return None
    plt, figure = _figure(6.0, 3.2)
    ax = figure.add_subplot(1, 1, 1)
    epochs = [p["epoch"] for p in progress]
    ax.plot(epochs, [p["train_loss"] for p in progress], marker="o", label="training", color=COLOURS["training"])
    ax.plot(epochs, [p["validation_loss"] for p in progress], marker="o", label="validation",
            color=COLOURS["synthetic"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return _png(plt, figure)


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG inlined in Markdown, which the Dagster UI shows in an asset's metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def inline_images(markdown: str, folder: Path) -> str:
    """Markdown whose images link PNG files in `folder` by name (the report beside its charts), with the images
    inlined: the UI cannot follow a relative link."""
    def inline(match: re.Match) -> str:
        png = folder / match.group(2)
        return markdown_image(png.read_bytes(), match.group(1)) if png.is_file() else match.group(0)

    return re.sub(r"!\[([^\]]*)\]\(([^)/\\]+\.png)\)", inline, markdown)
