"""Is the privacy gate's noise calibrated? Real unseen rows posing as synthetic, many times over.

    .venv/bin/python bench/privacy_noise.py [--replications 200] [--cases survey-2500 diamonds-6000 ...]
        [--copied 0.25]

Each replication draws a fresh training, validation and "synthetic" sample of a case's sizes from one real
population (the survey table's generator, diamonds, or the demo panel's persons with their years), the
"synthetic" rows being real rows neither partition holds: a generator that learnt the population and nothing
of its training rows. The quality stage's privacy figures (synth_assets.stages.privacy) are computed on it, as
`privacy_gate` computes them. A calibrated noise is about two standard deviations of what such a generator
scores: the spread of dcr_excess and membership_auc over replications is set beside the noise the figures
report, the share of replications whose figure lies beyond its noise (above 0 for the excess, above 0.5 for the
AUC), and the share the default gate fails (max_dcr_excess 0.02 and max_membership_auc 0.6, each beyond three
standard errors). With --copied, that share of the "synthetic" units are training units as they are: how
often the gate catches a generator that copies (its power), before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from synth_assets.config import DatasetSpec, ForeignKey, QualitySpec, SplitSpec, TableSpec  # noqa: E402
from synth_assets.stages.privacy import PrivacyGate, evaluate_privacy, gate_problems  # noqa: E402
from synth_assets.stages.split import split_tables  # noqa: E402
from synth_assets.stages.stats import compute_stats  # noqa: E402
from synth_assets.testing import survey_table  # noqa: E402

DEMO = REPO / "data" / "demo"
DEFAULTS = QualitySpec()  # the gate as a project without a quality section has it

# name: (population, training + validation units, validation share, synthetic units)
CASES = {
    "survey-2500": ("survey", 2500, 0.2, 400),  # the DP dg-launch test's sizes
    "survey-2000": ("survey", 2000, 0.2, 300),  # the backend contract's
    "diamonds-6000": ("diamonds", 6000, 0.2, 1000),
    "diamonds-30000": ("diamonds", 30000, 0.2, 5000),
    "panel-600": ("panel", 600, 0.2, 150),  # persons, each with their yearly records
}


def population(name: str, seed: int, size: int) -> dict[str, pd.DataFrame]:
    if name == "survey":  # a fresh population each replication
        return {"survey": survey_table(size, seed=seed)}
    if name == "diamonds":
        return {"diamonds": pd.read_csv(DEMO / "diamonds.csv.gz")}
    return {name: pd.read_csv(DEMO / f"{name}.csv.gz") for name in ("persons", "years")}


def spec_of(name: str, share: float, seed: int) -> tuple[DatasetSpec, str]:
    if name == "panel":
        tables = {"persons": TableSpec(source="persons.csv.gz", primary_key="id"),
                  "years": TableSpec(source="years.csv.gz", foreign_keys=[ForeignKey(column="id", references="persons")],
                                     order_by="year")}
        return DatasetSpec(backend="tabular_argn", tables=tables, split=SplitSpec(validation_share=share, seed=seed)), \
            "years"
    return DatasetSpec(backend="tabular_argn", tables={name: TableSpec(source=f"{name}.parquet")},
                       split=SplitSpec(validation_share=share, seed=seed)), name


def draw(frames: dict[str, pd.DataFrame], units: int, extra: int, rng: np.random.Generator
         ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """`units` units for the split and `extra` more, disjoint: flat rows, or persons with their records."""
    if "persons" in frames:
        persons, years = frames["persons"], frames["years"]
        ids = rng.permutation(persons["id"].to_numpy())
        picks = ids[:units], ids[units:units + extra]
        return tuple({"persons": persons[persons["id"].isin(p)].reset_index(drop=True),
                      "years": years[years["id"].isin(p)].reset_index(drop=True)} for p in picks)
    [(name, rows)] = frames.items()
    order = rng.permutation(len(rows))
    return tuple({name: rows.iloc[o].reset_index(drop=True)} for o in (order[:units], order[units:units + extra]))


def with_copies(split_train: dict[str, pd.DataFrame], unseen: dict[str, pd.DataFrame], share: float,
                rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """The positive control: `share` of the "synthetic" units replaced by training units as they are (persons
    with all their records)."""
    if share == 0:
        return unseen
    if "persons" in unseen:
        n = round(share * len(unseen["persons"]))
        copied = rng.choice(split_train["persons"]["id"].to_numpy(), size=n, replace=False)
        kept = unseen["persons"]["id"].to_numpy()[n:]
        return {t: pd.concat([split_train[t][split_train[t]["id"].isin(copied)], unseen[t][unseen[t]["id"].isin(kept)]],
                             ignore_index=True) for t in ("persons", "years")}
    [(name, rows)] = unseen.items()
    n = round(share * len(rows))
    source = split_train[name]
    copied = source.iloc[rng.choice(len(source), size=n, replace=False)]
    return {name: pd.concat([copied, rows.iloc[n:]], ignore_index=True)}


def replicate(case: str, replication: int, cache: dict, copied: float = 0.0) -> dict:
    kind, units, share, synthetic_units = CASES[case]
    key = (kind, replication if kind == "survey" else 0)
    if key not in cache:
        cache.clear()
        cache[key] = population(kind, seed=replication, size=units + synthetic_units)
    rng = np.random.default_rng([17, replication])
    frames, unseen = draw(cache[key], units, synthetic_units, rng)
    spec, table = spec_of(kind, share, replication)
    split = split_tables(spec, frames)
    stats = compute_stats(spec, split.train, dataset=case, hints={})
    synthetic = with_copies(split.train, unseen, copied, rng)
    figures = evaluate_privacy(stats, table, split.train, split.validation, synthetic, seed=replication)
    gate = PrivacyGate(max_dcr_excess=DEFAULTS.max_dcr_excess, max_membership_auc=DEFAULTS.max_membership_auc)
    copies = PrivacyGate(max_copy_excess=DEFAULTS.max_copy_excess)
    return {"gate_failed": bool(gate_problems(figures, gate)), "copy_gate_failed": bool(gate_problems(figures, copies)),
            "dcr_excess": figures.dcr_excess, "dcr_excess_noise": figures.dcr_excess_noise,
            "membership_auc": figures.membership_auc, "membership_auc_noise": figures.membership_auc_noise,
            "compared": figures.compared, "draws": figures.draws}


def summarise(case: str, rows: list[dict]) -> dict:
    df = pd.DataFrame(rows)
    out = {"case": case, "replications": len(df), "compared": int(df.compared.median()),
           "gate_fails": round(float(df.gate_failed.mean()), 4),  # the default gate, DCR excess and membership
           "copy_gate_fails": round(float(df.copy_gate_failed.mean()), 4)}  # the default exact-copy gate alone
    # the DCR noise up to 6488226: each draw's share and floor taken for independent proportions near 0.5
    df["dcr_excess_independent_noise"] = 2.0 * np.sqrt(0.5 / df.compared / df.draws)
    independent = df["dcr_excess_independent_noise"]
    out["dcr_excess_independent_draws"] = {
        "reported_noise": round(float(independent.mean()), 4),
        "noise_over_sd": round(float(independent.mean() / df.dcr_excess.std()), 2),
        "beyond_noise": round(float((df.dcr_excess > independent).mean()), 4),
        # the default gate up to 6488226: each figure beyond its threshold by more than two standard errors
        "gate_fails": round(float(((df.dcr_excess - independent > DEFAULTS.max_dcr_excess)
                                   | (df.membership_auc - df.membership_auc_noise > DEFAULTS.max_membership_auc)
                                   ).mean()), 4)}
    for figure, centre in (("dcr_excess", 0.0), ("membership_auc", 0.5)):
        noise = df[f"{figure}_noise"]
        out[figure] = {
            "mean": round(float(df[figure].mean()), 4),
            "sd": round(float(df[figure].std()), 4),
            "reported_noise": round(float(noise.mean()), 4),  # meant as two standard deviations
            "noise_over_sd": round(float(noise.mean() / df[figure].std()), 2),
            "beyond_noise": round(float((df[figure] - centre > noise).mean()), 4),  # beyond two standard errors
            "max": round(float(df[figure].max()), 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--copied", type=float, default=0.0,
                        help="the share of synthetic units that are training units as they are: the gate's power")
    parser.add_argument("--out", type=Path, default=None, help="a JSON file for the summaries")
    args = parser.parse_args()
    summaries, cache = [], {}
    for case in args.cases:
        started, rows = time.time(), []
        for r in range(args.replications):
            rows.append(replicate(case, r, cache, args.copied))
        summary = summarise(case, rows)
        summary["copied"] = args.copied
        summary["seconds"] = round(time.time() - started, 1)
        summaries.append(summary)
        print(json.dumps(summary), flush=True)
    if args.out:
        args.out.write_text(json.dumps(summaries, indent=2))


if __name__ == "__main__":
    main()
