"""The quality report as Markdown: readable in a browser, an editor, and the Dagster UI."""

from __future__ import annotations

import math

import pandas as pd

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


CHARTS = ("distributions", "correlations", "accuracy", "privacy")


def chart_file(table: str, chart: str) -> str:
    """The file name of one of a table's charts, beside the report."""
    return f"{table}_{chart}.png"


def score(value: float | None, spec: str = ".3f") -> str:
    """A figure as the report writes it; a dash where there is none (NaN: not computed, see its reason)."""
    return "–" if value is None or math.isnan(value) else format(value, spec)


def render_report(dataset: str, backend: str, results: dict[str, TableQuality], max_dcr_share: float,
                  protection: dict | None = None, drawn: dict[str, set[str]] | None = None,
                  texts_by: str | None = None) -> str:
    """`protection`: how the stats protected values and what the model's training spent (`privacy_lines`);
    `drawn`: the charts each table has (all of them when not given); `texts_by`: what wrote the free-text
    columns."""
    lines = [f"# Quality report: {dataset}", "", f"Backend: `{backend}`", ""]
    lines += [
        "| table | rows compared | accuracy | holdout ceiling | univariate | bivariate | DCR share | discriminator AUC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for q in results.values():
        lines.append(
            f"| {q.table} | {q.rows_compared:,} | {score(q.accuracy)} | {score(q.holdout_accuracy)} | "
            f"{score(q.univariate)} | {score(q.bivariate)} | {score(q.dcr_share)} | {score(q.discriminator_auc)} |"
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
                  f"{score(s.length_accuracy)} / {score(s.holdout_length_accuracy)} | {score(s.coherence)} / "
                  f"{score(s.holdout_coherence)} | {score(s.parent_child_accuracy)} / "
                  f"{score(s.holdout_parent_child_accuracy)} | "
                  + (f"{s.repeated_order_share:.3f} ({s.training_repeated_order_share:.3f}) |"
                     if s.repeated_order_share is not None else "– |")
                  for t, s in sequences.items()]
    lines += text_lines(results, texts_by)
    lines += privacy_lines(results, protection or {})
    for q in results.values():
        lines += ["", f"## {q.table}", ""]
        if q.unavailable:
            lines += ["Not measured:", "", *(f"- {figure}: {why}" for figure, why in q.unavailable.items()), ""]
        if not math.isnan(q.dcr_share):
            lines.append(f"Privacy: DCR share {q.dcr_share:.3f}: {verdict(q.dcr_share, max_dcr_share)}.")
        if not math.isnan(q.discriminator_auc):
            lines.append(f"Told apart from real rows: discriminator AUC {q.discriminator_auc:.3f}"
                         f" ({discriminator_verdict(q.discriminator_auc)}).")
        if not math.isnan(q.dcr_synthetic_median):
            lines.append(f"Median distance to the closest training row: synthetic {q.dcr_synthetic_median:.4f},"
                         f" holdout {q.dcr_holdout_median:.4f}.")
        if q.columns:
            lines += ["", "| column | accuracy | holdout |", "|---|---:|---:|"]
            lines += [f"| {column} | {score(value)} | {score(q.holdout_columns[column])} |"
                      for column, value in sorted(q.columns.items(), key=lambda kv: kv[1])]
        charts = drawn.get(q.table, set()) if drawn is not None else {c for c in CHARTS if c != "privacy" or q.privacy}
        lines += ["", *(f"![{q.table}: {chart}]({chart_file(q.table, chart)})" for chart in CHARTS if chart in charts)]
        if q.worst_pairs:
            lines += ["", "Weakest column pairs:", "", "| columns | accuracy |", "|---|---:|"]
            lines += [f"| {a} × {b} | {s:.3f} |" for a, b, s in q.worst_pairs]
    return "\n".join(lines) + "\n"


def text_lines(results: dict[str, TableQuality], texts_by: str | None = None) -> list[str]:
    """Free-text columns: what wrote them, lengths, words and copies (synthetic against training, the holdout's
    beside), and a few written texts beside real ones."""
    texts = [(t, q) for t, quality in results.items() for q in quality.text.values()]
    if not texts:
        return []
    lines = [
        *(["", f"Free-text columns written by {texts_by}."] if texts_by else []),
        "", "Free-text columns (synthetic / holdout ceiling): length and word-frequency similarity to the training",
        "texts, mean characters and words (training's in brackets), and copies of a training text (the holdout's",
        "own share beside: common texts such as 'Untitled' are copies in real data too).", "",
        "| table | column | length | words | mean characters | mean words | copies (holdout) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {t} | {q.column} | {score(q.length_similarity)} / {score(q.holdout_length_similarity)} | "
              f"{score(q.word_similarity)} / {score(q.holdout_word_similarity)} | {q.mean_characters:.1f} "
              f"({q.training_mean_characters:.1f}) | {q.mean_words:.1f} ({q.training_mean_words:.1f}) | "
              f"{q.exact_copy_share:.3f} ({q.holdout_exact_copy_share:.3f}) |" for t, q in texts]
    for t, q in texts:
        lines += ["", f"Written `{t}.{q.column}` beside real ones:", "",
                  markdown_table(["written", "real"], [[a, b] for a, b in zip(q.samples, q.real_samples)])]
    return lines


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value, width: int = 80) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = " ".join(str(value).split())  # a newline would end the Markdown row
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("|", "\\|")


def protection_words(protection: dict) -> str:
    """What protects the data, in one sentence: differential privacy's (ε, δ), or the rare-value rule, or nothing."""
    mode = protection.get("mode", "rare_values")
    if mode == "differential_privacy":
        spent = protection.get("epsilon")
        if spent is None:
            return (f"**differential privacy**: the stats spent ε {protection.get('epsilon_value_protection', 0):.2f}; "
                    "the model's ε shows once it is trained with it")
        return (f"**differential privacy, ε = {spent:.2f}, δ = {protection.get('delta', 0):.2g}** per subject "
                f"(training {protection.get('epsilon_training', 0):.2f} + value protection "
                f"{protection.get('epsilon_value_protection', 0):.2f}; budget "
                f"{protection.get('max_epsilon') if protection.get('max_epsilon') is not None else 'none'})")
    if mode == "off":
        return ("**no value protection** (privacy.value_protection: false): every value, rare ones and extremes "
                "included, may appear in the output; no formal guarantee")
    return (f"rare-value protection: values held by fewer than {protection.get('rare_threshold', 5)} subjects and "
            "the most extreme ones are withheld; no formal guarantee (train.differential_privacy gives one)")


def privacy_lines(results: dict[str, TableQuality], protection: dict) -> list[str]:
    """The privacy section: how the data were protected, then each table's figures beside their baselines."""
    lines = ["", "## Privacy", "", f"Protection: {protection_words(protection)}."]
    judged = {t: q.privacy for t, q in results.items() if q.privacy}
    if not judged:
        return lines
    lines += [
        "",
        "Each figure beside what real unseen data (the holdout) scores when judged the same way: the gap is the",
        "risk. DCR share against its floor: holdout rows posing as synthetic, averaged over seeded draws (excess",
        "± two standard errors). Membership AUC: an attacker calling the rows nearest the synthetic data training",
        "members (0.5: no signal). Exact copies: synthetic rows (subjects) identical to a training one, beside",
        "the holdout's. Attribute inference, for columns marked `sensitive`: the share of training rows whose",
        "value the nearest synthetic row on the other columns gives away, beside the same attack with holdout rows.",
        "The privacy gate fails a figure only beyond its threshold (`quality:`) by more than three standard errors:",
        "what chance does not explain.",
        "",
        "| table | DCR share | floor | excess | membership AUC | exact copies (holdout) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for table, f in judged.items():
        lines.append(f"| {table} | {f['dcr_share']:.3f} | {f['dcr_floor']:.3f} | {f['dcr_excess']:+.3f} "
                     f"± {f['dcr_excess_noise']:.3f} | {f['membership_auc']:.3f} | {f['exact_copy_share']:.1%} "
                     f"({f['holdout_exact_copy_share']:.1%}) |")
    attributes = [(t, key.split("/")[1], v, f[f"{key}/holdout"]) for t, f in judged.items()
                  for key, v in f.items() if key.startswith("attribute_inference/") and key.count("/") == 1]
    if attributes:
        lines += ["", "| table | sensitive column | inferred from synthetic | from holdout | excess |", "|---|---|---:|---:|---:|"]
        lines += [f"| {t} | {c} | {s:.3f} | {h:.3f} | {s - h:+.3f} |" for t, c, s, h in attributes]
    return lines
