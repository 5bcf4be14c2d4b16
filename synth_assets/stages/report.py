"""The quality report as Markdown: readable in a browser, an editor, and the Dagster UI."""

from __future__ import annotations

from synth_assets.stages.quality import TableQuality


def verdict(share: float, threshold: float) -> str:
    if share > threshold:
        return f"**too close to the training data** (above {threshold:.2f})"
    return "private (close to 0.5 means no row is nearer to training than to unseen data)"


def render_report(dataset: str, backend: str, results: dict[str, TableQuality], max_dcr_share: float) -> str:
    lines = [f"# Quality report: {dataset}", "", f"Backend: `{backend}`", ""]
    lines += [
        "| table | rows compared | accuracy | holdout ceiling | univariate | bivariate | DCR share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for q in results.values():
        lines.append(
            f"| {q.table} | {q.rows_compared:,} | {q.accuracy:.3f} | {q.holdout_accuracy:.3f} | {q.univariate:.3f}"
            f" | {q.bivariate:.3f} | {q.dcr_share:.3f} |"
        )
    lines += [
        "",
        "Accuracy is 1 − total variation distance between binned distributions of the synthetic and the",
        "training rows (each column, and every pair of columns). The holdout ceiling is the same score for",
        "real rows the model never saw. DCR share is the share of synthetic rows closer to a training row",
        "than to a holdout row.",
    ]
    for q in results.values():
        lines += ["", f"## {q.table}", "", f"Privacy: DCR share {q.dcr_share:.3f}: {verdict(q.dcr_share, max_dcr_share)}."]
        lines += [
            f"Median distance to the closest training row: synthetic {q.dcr_synthetic_median:.4f},"
            f" holdout {q.dcr_holdout_median:.4f}.",
            "",
            "| column | accuracy | holdout |",
            "|---|---:|---:|",
        ]
        for column, score in sorted(q.columns.items(), key=lambda kv: kv[1]):
            lines.append(f"| {column} | {score:.3f} | {q.holdout_columns[column]:.3f} |")
        if q.worst_pairs:
            lines += ["", "Weakest column pairs:", "", "| columns | accuracy |", "|---|---:|"]
            lines += [f"| {a} × {b} | {s:.3f} |" for a, b, s in q.worst_pairs]
    return "\n".join(lines) + "\n"
