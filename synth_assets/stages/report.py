"""The quality report as Markdown: readable in a browser, an editor, and the Dagster UI."""

from __future__ import annotations

import math

from synth_assets.stages.quality import TableQuality


def verdict(share: float, threshold: float) -> str:
    if share > threshold:
        return f"**too close to the training data** (above {threshold:.2f})"
    return "private (close to 0.5 means no row is nearer to training than to unseen data)"


def discriminator_verdict(auc: float) -> str:
    if math.isnan(auc):  # too few rows
        return "too few rows to tell"
    if auc < 0.45:  # a held-out copy has its twin, labelled real, among the rows the classifier learned from
        return "below 0.5: rows copied from the training data look like this, see the DCR share"
    if auc < 0.6:
        return "hard to tell apart"
    if auc < 0.8:
        return "partly told apart"
    return "**easily told apart**"


CHARTS = ("distributions", "correlations", "accuracy")


def chart_file(table: str, chart: str) -> str:
    """The file name of one of a table's charts, beside the report."""
    return f"{table}_{chart}.png"


def render_report(dataset: str, backend: str, results: dict[str, TableQuality], max_dcr_share: float) -> str:
    lines = [f"# Quality report: {dataset}", "", f"Backend: `{backend}`", ""]
    lines += [
        "| table | rows compared | accuracy | holdout ceiling | univariate | bivariate | DCR share | discriminator AUC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for q in results.values():
        lines.append(
            f"| {q.table} | {q.rows_compared:,} | {q.accuracy:.3f} | {q.holdout_accuracy:.3f} | {q.univariate:.3f}"
            f" | {q.bivariate:.3f} | {q.dcr_share:.3f} | {q.discriminator_auc:.3f} |"
        )
    lines += [
        "",
        "Accuracy is 1 − total variation distance between binned distributions of the synthetic and the",
        "training rows (each column, and every pair of columns). The holdout ceiling is the same score for",
        "real rows the model never saw. DCR share is the share of synthetic rows closer to a training row",
        "than to a holdout row.",
        "",
        "Discriminator AUC: can the synthetic rows be told apart from real ones? A gradient-boosted classifier",
        "is trained to tell as many training rows from synthetic rows, seeing their values as a user does",
        "(numbers with their decimals, dates with their precision, categories), and scored on rows it did",
        "not see: 0.5 means it cannot tell them apart, 1.0 that it always can (well below 0.5: copies).",
    ]
    sequences = {q.table: q.sequence for q in results.values() if q.sequence is not None}
    if sequences:
        lines += [
            "",
            "Child tables as sequences under their parents (synthetic / holdout ceiling): records per parent",
            "(length), how each record relates to the next one of the same subject (coherence), and parent",
            "columns against child columns; records repeating their parent's previous order value (training's",
            "share in brackets).",
            "",
            "| table | parent | mean records (training) | length | coherence | parent–child | repeated order (training) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        lines += [f"| {t} | {s.parent} | {s.mean_length:.2f} ({s.training_mean_length:.2f}) | "
                  f"{s.length_accuracy:.3f} / {s.holdout_length_accuracy:.3f} | {s.coherence:.3f} / "
                  f"{s.holdout_coherence:.3f} | {s.parent_child_accuracy:.3f} / {s.holdout_parent_child_accuracy:.3f} | "
                  + (f"{s.repeated_order_share:.3f} ({s.training_repeated_order_share:.3f}) |"
                     if s.repeated_order_share is not None else "– |")
                  for t, s in sequences.items()]
    for q in results.values():
        lines += ["", f"## {q.table}", "", f"Privacy: DCR share {q.dcr_share:.3f}: {verdict(q.dcr_share, max_dcr_share)}."]
        lines.append(f"Told apart from real rows: discriminator AUC {q.discriminator_auc:.3f}"
                     f" ({discriminator_verdict(q.discriminator_auc)}).")
        lines += [
            f"Median distance to the closest training row: synthetic {q.dcr_synthetic_median:.4f},"
            f" holdout {q.dcr_holdout_median:.4f}.",
            "",
            "| column | accuracy | holdout |",
            "|---|---:|---:|",
        ]
        for column, score in sorted(q.columns.items(), key=lambda kv: kv[1]):
            lines.append(f"| {column} | {score:.3f} | {q.holdout_columns[column]:.3f} |")
        lines += ["", *(f"![{q.table}: {chart}]({chart_file(q.table, chart)})" for chart in CHARTS)]
        if q.worst_pairs:
            lines += ["", "Weakest column pairs:", "", "| columns | accuracy |", "|---|---:|"]
            lines += [f"| {a} × {b} | {s:.3f} |" for a, b, s in q.worst_pairs]
    return "\n".join(lines) + "\n"
