"""The calibrated privacy evaluation on real data, with negative and positive controls.

Negative control: "synthetic" rows that are real rows no side saw, a generator that learnt the population and
nothing of its training rows; every figure must sit on its baseline. Positive control: a generator that copies
its training rows (all of them, or half with unseen rows beside them); every figure must show it, in proportion
to the share copied. Flat (diamonds) and by subject (persons with their yearly records).

The DCR excess of copies is diluted by design (the protocol of ../shared/tools/dcr_excess.py): T holds as many
training units as half the validation does, so a copy of a training unit outside T counts as unseen data. With
validation as large as training (flat) T is half of training: copying everything lifts the share to 0.75, half
of it to 0.625.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_assets.config import DatasetSpec, ForeignKey, SplitSpec, TableSpec
from synth_assets.errors import SynthError
from synth_assets.stages.privacy import DEFAULT_DRAWS, PrivacyFigures, evaluate_privacy, roc_auc
from synth_assets.stages.split import split_tables
from synth_assets.stages.stats import DatasetStats, compute_stats
from synth_assets.testing import survey_table

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@dataclass
class Case:
    stats: DatasetStats
    train: dict[str, pd.DataFrame]
    validation: dict[str, pd.DataFrame]
    unseen: dict[str, pd.DataFrame]  # real rows neither partition holds: a generator that copies nothing

    def evaluate(self, table: str, synthetic: dict[str, pd.DataFrame], **options) -> PrivacyFigures:
        return evaluate_privacy(self.stats, table, self.train, self.validation, synthetic, **options)


# data ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def diamonds() -> Case:
    rows = pd.read_csv(DEMO / "diamonds.csv.gz").sample(6_000, random_state=0).reset_index(drop=True)
    spec = DatasetSpec(backend="tabular_argn", tables={"diamonds": TableSpec(source="diamonds.csv.gz")},
                       split=SplitSpec(validation_share=0.5, seed=0))
    split = split_tables(spec, {"diamonds": rows.iloc[:4_000]})
    stats = compute_stats(spec, split.train, dataset="diamonds", hints={})
    return Case(stats, split.train, split.validation, {"diamonds": rows.iloc[4_000:].reset_index(drop=True)})


@pytest.fixture(scope="module")
def panel() -> Case:
    """Persons and their survey years, split by person three ways: training 40%, validation 30%, unseen 30%."""
    tables = {
        "persons": TableSpec(source="persons.csv.gz", primary_key="id"),
        "years": TableSpec(source="years.csv.gz", foreign_keys=[ForeignKey(column="id", references="persons")],
                           order_by="year"),
    }
    frames = {name: pd.read_csv(DEMO / f"{name}.csv.gz") for name in tables}
    spec = DatasetSpec(backend="tabular_argn", tables=tables, split=SplitSpec(validation_share=0.6, seed=0))
    split = split_tables(spec, frames)
    rest = split_tables(spec.model_copy(update={"split": SplitSpec(validation_share=0.5, seed=1)}), split.validation)
    stats = compute_stats(spec, split.train, dataset="panel", hints={})
    return Case(stats, split.train, rest.train, rest.validation)


def copied(case: Case, table: str, share: float) -> dict[str, pd.DataFrame]:
    """A generator that gives back `share` of the training rows (persons: with all their records) as they are,
    and unseen real rows for the rest."""
    rows = case.train[table]
    n = round(share * len(rows))
    picked = rows.sample(n, random_state=1)
    return {table: pd.concat([picked, case.unseen[table].iloc[: len(rows) - n]], ignore_index=True)}


@pytest.fixture(scope="module")
def flat(diamonds) -> dict[str, PrivacyFigures]:
    options = dict(sensitive=["price", "cut"])
    return {
        "unseen": diamonds.evaluate("diamonds", diamonds.unseen, **options),
        "copies": diamonds.evaluate("diamonds", diamonds.train, **options),
        "half copies": diamonds.evaluate("diamonds", copied(diamonds, "diamonds", 0.5), **options),
    }


@pytest.fixture(scope="module")
def subjects(panel) -> dict[str, PrivacyFigures]:
    return {
        "unseen": panel.evaluate("years", panel.unseen, sensitive=["hhninc"]),
        "copies": panel.evaluate("years", panel.train, sensitive=["hhninc"]),
    }


# flat table ----------------------------------------------------------------------------------------

def test_unseen_real_rows_sit_on_every_baseline(flat, diamonds):
    figures = flat["unseen"]
    assert figures.unit == "rows" and figures.draws == DEFAULT_DRAWS == len(figures.dcr_draws)
    assert figures.compared == len(diamonds.validation["diamonds"]) // 2
    assert abs(figures.dcr_floor - 0.5) < 0.03  # rows are their own units here: no floor above 0.5
    assert abs(figures.dcr_excess) < 0.03
    assert abs(figures.membership_auc - 0.5) < 0.05
    assert abs(figures.exact_copy_share - figures.holdout_exact_copy_share) < 0.01
    for risk in figures.attribute_risks:
        assert abs(risk.excess) < 0.05, risk


def test_a_generator_copying_its_training_rows_is_caught(flat):
    figures = flat["copies"]
    assert figures.dcr_excess > 0.2  # 0.75 against 0.5
    assert figures.membership_auc > 0.95
    assert figures.exact_copy_share == 1.0 and figures.holdout_exact_copy_share < 0.01
    assert figures.dcr_floor == pytest.approx(flat["unseen"].dcr_floor)  # the floor does not depend on the generator


def test_the_risk_scales_with_the_share_copied(flat):
    half, full = flat["half copies"], flat["copies"]
    assert 0.08 < half.dcr_excess < 0.17 and half.dcr_excess < full.dcr_excess - 0.05
    assert 0.65 < half.membership_auc < 0.85
    assert half.exact_copy_share == pytest.approx(0.5, abs=0.02)


def test_attribute_inference_finds_what_copies_give_away(flat):
    risks = {risk.column: risk for risk in flat["copies"].attribute_risks}
    assert set(risks) == {"price", "cut"}
    assert risks["price"].quasi_identifiers == ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]
    for risk in risks.values():
        assert risk.synthetic_score > 0.95 and risk.excess > 0.3, risk
        assert risk.excess == pytest.approx(risk.synthetic_score - risk.holdout_score)
    half = {risk.column: risk for risk in flat["half copies"].attribute_risks}
    for column, risk in half.items():
        assert 0.1 < risk.excess < risks[column].excess, risk


def test_named_quasi_identifiers_are_all_the_attacker_knows(diamonds):
    figures = diamonds.evaluate("diamonds", diamonds.train, sensitive=["price"], quasi_identifiers=["cut", "color"],
                                draws=1)
    (risk,) = figures.attribute_risks
    assert risk.quasi_identifiers == ["cut", "color"]
    # cut and colour hold 35 combinations: even copies give a price's decile away no better than unseen rows do
    assert risk.synthetic_score < 0.3 and abs(risk.excess) < 0.05


def remeasured(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same diamonds measured again: x, y and z off by 0.01 mm."""
    rng = np.random.default_rng(seed)
    return rows.assign(**{axis: (rows[axis] + rng.choice([-0.01, 0.01], len(rows))).round(2)
                          for axis in ("x", "y", "z")}).reset_index(drop=True)


def test_the_floor_is_where_unseen_data_lands_not_one_half(diamonds):
    """Where the holdout repeats the training entities (here: the same diamonds measured again, as a panel repeats
    persons), unseen data lies closer to training than to the holdout: the floor rises above 0.5, and a generator
    that re-measures other training diamonds, no closer than the holdout is, shows no excess. Only the exact-copy
    figure tells re-measurements from copies."""
    train = diamonds.train["diamonds"]
    holdout = {"diamonds": remeasured(train.iloc[:1_000], seed=1)}
    like_holdout = evaluate_privacy(diamonds.stats, "diamonds", diamonds.train, holdout,
                                    {"diamonds": remeasured(train.iloc[1_000:], seed=2)})
    assert like_holdout.dcr_floor > 0.58 and like_holdout.dcr_share > 0.58
    assert abs(like_holdout.dcr_excess) < 0.03
    assert like_holdout.exact_copy_share == like_holdout.holdout_exact_copy_share == 0.0
    copies = evaluate_privacy(diamonds.stats, "diamonds", diamonds.train, holdout, {"diamonds": train.iloc[1_000:]},
                              draws=1)
    assert copies.exact_copy_share == 1.0


def test_an_unknown_sensitive_column_is_named(diamonds):
    with pytest.raises(SynthError, match="'carats'") as raised:
        diamonds.evaluate("diamonds", diamonds.unseen, sensitive=["carats"])
    assert raised.value.table == "diamonds" and raised.value.column == "carats" and "carat" in raised.value.hint


def test_nothing_to_compare_is_an_error(diamonds):
    with pytest.raises(ValueError, match="nothing to compare"):
        diamonds.evaluate("diamonds", {"diamonds": diamonds.unseen["diamonds"].iloc[:0]})


def test_the_same_seed_gives_the_same_figures(diamonds):
    synthetic = copied(diamonds, "diamonds", 0.3)
    first, again, other = (diamonds.evaluate("diamonds", synthetic, sensitive=["price"], draws=2, seed=seed)
                           for seed in (7, 7, 8))
    assert first == again
    assert first.dcr_draws != other.dcr_draws


def test_the_dcr_noise_covers_what_real_unseen_rows_score_by_chance():
    """The noise the DCR excess reports is meant as two standard deviations of what a generator that leaks nothing
    scores (the gate allows one and a half of it). Forty small tables (the contract suite's size: 400 validation rows, 300 synthetic),
    each with real unseen rows posing as synthetic: the noise each reports is about twice the spread of their
    excesses (the draws, which judge the same validation rows again, are not taken for independent evidence),
    and at most two of the forty lie beyond it. bench/privacy_noise.py runs this at 300 replications."""
    excesses, noises = [], []
    spec = DatasetSpec(backend="tabular_argn", tables={"survey": TableSpec(source="survey.parquet")})
    for replication in range(40):
        rows = survey_table(2_300, seed=replication)
        split = split_tables(spec, {"survey": rows.iloc[:2_000]})
        stats = compute_stats(spec, split.train, dataset="survey", hints={})
        figures = evaluate_privacy(stats, "survey", split.train, split.validation,
                                   {"survey": rows.iloc[2_000:]}, seed=replication)
        excesses.append(figures.dcr_excess)
        noises.append(figures.dcr_excess_noise)
    spread, noise = np.std(excesses, ddof=1), np.mean(noises)
    assert 1.8 * spread < noise < 3.5 * spread, (spread, noise)
    assert sum(excess > noise for excess, noise in zip(excesses, noises)) <= 2


# subjects: persons with their years ---------------------------------------------------------------

def test_unseen_persons_sit_on_every_baseline(subjects, panel):
    figures = subjects["unseen"]
    assert figures.unit == "subjects"
    assert figures.compared == len(panel.validation["persons"]) // 2  # persons, not records
    assert abs(figures.dcr_excess) < 0.03
    assert abs(figures.membership_auc - 0.5) < 0.05
    assert abs(figures.exact_copy_share - figures.holdout_exact_copy_share) < 0.01
    (risk,) = figures.attribute_risks
    assert risk.column == "hhninc" and abs(risk.excess) < 0.05


def test_a_generator_copying_whole_persons_is_caught(subjects):
    figures = subjects["copies"]
    assert figures.dcr_excess > 0.1  # T is 3/8 of the training persons: about 0.69 against 0.5
    assert figures.membership_auc > 0.95
    assert figures.exact_copy_share == 1.0 and figures.holdout_exact_copy_share < 0.01
    (risk,) = figures.attribute_risks
    assert risk.excess > 0.3


def test_a_copied_subject_is_its_parent_row_and_all_its_records(panel):
    persons, years = panel.train["persons"], panel.train["years"]
    options = dict(max_rows=2_000, draws=1)

    def copy_share(persons: pd.DataFrame, years: pd.DataFrame) -> float:
        return panel.evaluate("years", {"persons": persons, "years": years}, **options).exact_copy_share

    shuffled = years.sample(frac=1, random_state=2)  # records in another order, of persons renumbered
    renumbered = persons.assign(id=persons["id"] + 100_000)
    assert copy_share(renumbered, shuffled.assign(id=shuffled["id"] + 100_000)) == 1.0
    # one record changed, or the parent row: no longer a copy (one-record persons keep their single year)
    last = years.groupby("id").cumcount(ascending=False) == 0
    assert copy_share(persons, years.assign(hhninc=years["hhninc"].where(~last, years["hhninc"] + 0.01))) == 0.0
    assert copy_share(persons.assign(female=1 - persons["female"]), years) == 0.0
    # a person missing one of several records is not a copy either
    several = years.groupby("id")["id"].transform("size") > 1
    dropped = copy_share(persons, years[~(last & several)])
    assert dropped == pytest.approx(np.mean(years.groupby("id").size() == 1), abs=0.03)


def test_a_copy_is_a_copy_whatever_dtype_holds_its_numbers(diamonds):
    """The copies a generator writes come back in its own dtypes: whole numbers as floats, nullable integers,
    -0.0 for 0.0, None for NaN. Each is still a copy; a number off by a cent is not."""
    train = diamonds.train["diamonds"]
    options = dict(max_rows=2_000, draws=1)

    def copy_share(rows: pd.DataFrame) -> float:
        return diamonds.evaluate("diamonds", {"diamonds": rows}, **options).exact_copy_share

    assert copy_share(train.astype({"price": float, "carat": object})) == 1.0
    assert copy_share(train.astype({"price": "Int64"})) == 1.0
    assert copy_share(train.assign(price=train["price"] + 0.01)) == 0.0
    # training rows with nulls and zeros, copied as None and -0.0
    held = train.assign(depth=train["depth"].where(train.index % 3 > 0), x=train["x"] * 0.0)
    written = held.assign(depth=held["depth"].astype(object).where(held["depth"].notna(), None), x=-held["x"])
    figures = evaluate_privacy(diamonds.stats, "diamonds", {"diamonds": held}, diamonds.validation,
                               {"diamonds": written}, **options)
    assert figures.exact_copy_share == 1.0


def test_ties_count_half_and_baselines_judge_a_table_of_one_binary_column(panel):
    """Persons hold one modelled column, female: every unseen person ties with a training one and with a holdout
    one. The share sits at 0.5 (a tie counts half), and the exact-copy share at 1, as its baseline does."""
    figures = panel.evaluate("persons", panel.unseen, draws=2)
    assert figures.unit == "rows"  # a root table: its primary key is a key, not a feature
    assert figures.dcr_draws == [(0.5, 0.5), (0.5, 0.5)] and figures.membership_auc == 0.5
    assert figures.exact_copy_share == figures.holdout_exact_copy_share == 1.0


def test_the_membership_auc_is_the_roc_auc_with_ties_counting_half():
    """The membership attack's AUC (ranks through pandas) is sklearn's roc_auc_score, ties included."""
    from sklearn.metrics import roc_auc_score

    r = np.random.default_rng(4)
    for members, others in [(r.normal(0.3, 1, 300), r.normal(0, 1, 200)),  # apart: above one half
                            (r.integers(0, 4, 250).astype(float), r.integers(0, 5, 250).astype(float)),  # many ties
                            (np.zeros(10), np.zeros(7))]:  # all tied: one half
        expected = roc_auc_score(np.r_[np.ones(len(members)), np.zeros(len(others))], np.r_[members, others])
        assert roc_auc(members, others) == pytest.approx(expected, abs=1e-12)
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
