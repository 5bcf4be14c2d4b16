"""Privacy of a synthetic table, each figure beside the baseline that real unseen data reaches.

A figure alone says little: the DCR share sits above 0.5 wherever records repeat an entity, and a nearest
neighbour guesses a column well wherever the other columns determine it. So every figure here comes with the
same measurement for real rows no model saw (the validation partition), and the excess over it is the risk:
- DCR share against its floor (the protocol of ../shared/tools/dcr_excess.py, with quality.py's distances):
  per draw, the validation units split in two halves A and B; as many training units (T) and synthetic units
  (S) as A holds. share = the share of S's points closer to T than to A (ties count half); floor = the same
  for B, real unseen data posing as synthetic. A generator that copies training rows lifts the share above
  its floor; one that does not leaves them equal.
- membership inference: an attacker calls a unit a training member the closer it lies to the synthetic data.
  The ROC AUC of that guess over as many training as validation units: 0.5 when the synthetic data tells
  members from non-members no better than chance.
- attribute inference: an attacker who knows a training row's other columns (its quasi-identifiers) takes the
  sensitive value of the nearest synthetic row. Scored beside the same attacker given as many validation rows:
  the excess is what the synthetic data reveals beyond what the population does.
- exact copies: synthetic units identical to a training unit, beside validation units identical to one (the
  duplicates the data holds anyway).

A child table is judged by subjects: a parent row with all its records, every record a point made of its own
columns and its parent's (its context); samples draw whole subjects, equally many on each side, so that the
records of one person are never split between the sides (which would lift the floor, not the risk).
Backend-neutral, without Dagster or torch: numpy distances on the points of quality.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel

from synth_assets.errors import SynthError
from synth_assets.stages.nearest import TIE, nearest
from synth_assets.stages.quality import FeatureSpace, _bin_codes, _date_counts, _is_continuous
from synth_assets.stages.split import context_key
from synth_assets.stages.stats import ColumnStats, DatasetStats, TableStats

DEFAULT_DRAWS = 5
GATE_MARGIN = 1.5  # the gate's margin, in noises (a noise is two standard errors): three standard errors
CONTEXT_PREFIX = "parent."  # a parent column, as it stands beside its child's records
NULL_TEXT = "\x00null"  # a null, as the text values are compared by

# seeds of the independent random streams, (seed, purpose[, draw]): adding a figure changes no other one
_POOLS, _DRAWS, _MEMBERSHIP, _ATTRIBUTES, _COPIES = range(5)


class AttributeRisk(BaseModel):
    column: str
    quasi_identifiers: list[str]
    synthetic_score: float  # how well the attacker predicts training rows' value from the synthetic data
    holdout_score: float  # the same attacker, given as many real holdout rows instead
    excess: float  # synthetic_score - holdout_score (> 0: the synthetic data reveals more than unseen data would)


class TextCopies(BaseModel):
    """A free-text column's written texts identical to a training text, beside real unseen texts' share: of any
    training text, and of a rare one (one the stats did not keep as a common text: too few units hold it). The
    gate judges the rare copies: a common text ("Untitled") written too often is a matter of fidelity, a rare
    one written at all is some subject's own text."""

    column: str
    exact_copy_share: float
    holdout_exact_copy_share: float
    rare_copy_share: float
    holdout_rare_copy_share: float
    compared: int  # written texts checked (and as many holdout texts at most)

    @property
    def excess(self) -> float:
        return self.rare_copy_share - self.holdout_rare_copy_share

    @property
    def noise(self) -> float:
        return _share_difference_noise(self.holdout_rare_copy_share, self.compared)


class PrivacyFigures(BaseModel):
    table: str
    unit: str  # "rows" or "subjects" (a child table: whole subjects on every side)
    draws: int
    compared: int  # rows (or subjects) on each side of one draw
    dcr_share: float  # mean over draws
    dcr_floor: float  # mean over draws
    dcr_excess: float  # dcr_share - dcr_floor
    dcr_draws: list[tuple[float, float]]  # (share, floor) per draw
    dcr_excess_noise: float  # about two standard deviations of dcr_excess where nothing leaks (_dcr_excess_noise)
    membership_auc: float
    exact_copy_share: float  # synthetic rows (subjects) identical to a training one
    holdout_exact_copy_share: float  # holdout rows (subjects) identical to a training one: the baseline
    attribute_risks: list[AttributeRisk] = []
    text_copies: list[TextCopies] = []  # the table's free-text columns
    membership_compared: int = 0  # training units and as many validation units the attack judged
    copies_compared: int = 0  # synthetic units checked for copies (and as many holdout units at most)

    @property
    def membership_auc_noise(self) -> float:
        """Two standard errors of an AUC of no signal over n members and n non-members (Hanley & McNeil)."""
        n = max(self.membership_compared, 1)
        return 2.0 * math.sqrt((2 * n + 1) / (12.0 * n * n))

    @property
    def copy_excess(self) -> float:
        return self.exact_copy_share - self.holdout_exact_copy_share

    @property
    def copy_excess_noise(self) -> float:
        return _share_difference_noise(self.holdout_exact_copy_share, self.copies_compared)

    def summary(self) -> dict[str, float]:
        """The figures the quality metadata, the report and `show` print."""
        out = {"dcr_share": self.dcr_share, "dcr_floor": self.dcr_floor, "dcr_excess": self.dcr_excess,
               "dcr_excess_noise": self.dcr_excess_noise, "membership_auc": self.membership_auc,
               "exact_copy_share": self.exact_copy_share, "holdout_exact_copy_share": self.holdout_exact_copy_share}
        for copies in self.text_copies:
            out[f"text_copies/{copies.column}"] = copies.exact_copy_share
            out[f"text_copies/{copies.column}/holdout"] = copies.holdout_exact_copy_share
            out[f"text_rare_copies/{copies.column}"] = copies.rare_copy_share
            out[f"text_rare_copies/{copies.column}/holdout"] = copies.holdout_rare_copy_share
        for risk in self.attribute_risks:
            out[f"attribute_inference/{risk.column}"] = risk.synthetic_score
            out[f"attribute_inference/{risk.column}/holdout"] = risk.holdout_score
        return {key: round(float(value), 4) for key, value in out.items()}


class PrivacyGate(BaseModel):
    """The thresholds of the blocking privacy gate (quality: in synth.yaml); None: not gated. max_dcr_share judges
    quality.py's DCR share (every training row against as many holdout rows), the figure gated before there
    was a floor to measure against."""

    max_dcr_share: float | None = None
    max_dcr_excess: float | None = None
    max_membership_auc: float | None = None
    max_copy_excess: float | None = None
    max_text_copy_excess: float | None = None


def gate_problems(figures: PrivacyFigures, gate: PrivacyGate, dcr_share: float | None = None) -> list[str]:
    """What the gate finds wrong with a table's figures, each with what to do. A figure fails when it lies above
    its threshold by more than three standard errors (GATE_MARGIN noises): the gate holds against a real signal,
    not against chance, so real unseen data passes it on any table, and a small table's wide noise does not fail
    an honest model (its copies still do: they lie far above). At two standard errors (the noise the figures
    report) chance alone blocked honest runs on small tables now and then (bench/RESULTS.md, "privacy gate
    noise")."""
    problems = []
    if gate.max_dcr_excess is not None and _beyond(figures.dcr_excess, gate.max_dcr_excess, figures.dcr_excess_noise):
        problems.append(f"DCR share {figures.dcr_share:.3f} lies {figures.dcr_excess:+.3f} above its floor "
                        f"{figures.dcr_floor:.3f} (real unseen {figures.unit}), beyond quality.max_dcr_excess "
                        f"{gate.max_dcr_excess}{_by_more_than_chance(figures.dcr_excess_noise)}")
    if gate.max_membership_auc is not None and \
            _beyond(figures.membership_auc, gate.max_membership_auc, figures.membership_auc_noise):
        problems.append(f"a membership attack tells training {figures.unit} from unseen ones with AUC "
                        f"{figures.membership_auc:.3f}, beyond quality.max_membership_auc {gate.max_membership_auc}"
                        f"{_by_more_than_chance(figures.membership_auc_noise)}")
    if gate.max_copy_excess is not None and _beyond(figures.copy_excess, gate.max_copy_excess,
                                                    figures.copy_excess_noise):
        problems.append(f"{figures.exact_copy_share:.1%} of the synthetic {figures.unit} are exact copies of "
                        f"training ones, against {figures.holdout_exact_copy_share:.1%} of unseen ones, beyond "
                        f"quality.max_copy_excess {gate.max_copy_excess}")
    if gate.max_text_copy_excess is not None:
        for copies in figures.text_copies:
            if _beyond(copies.excess, gate.max_text_copy_excess, copies.noise):
                problems.append(f"column '{copies.column}': {copies.rare_copy_share:.1%} of the written texts are "
                                f"copies of training texts too few subjects hold, against "
                                f"{copies.holdout_rare_copy_share:.1%} of unseen ones, beyond "
                                f"quality.max_text_copy_excess {gate.max_text_copy_excess}")
    if gate.max_dcr_share is not None and dcr_share is not None and dcr_share > gate.max_dcr_share:
        problems.append(f"DCR share {dcr_share:.3f} (all training rows against as many holdout rows) above "
                        f"quality.max_dcr_share {gate.max_dcr_share}")
    if problems:
        problems[-1] += ("; train with differential privacy (train.differential_privacy), a smaller model or "
                         "fewer epochs, or raise the threshold")
    return problems


def _beyond(figure: float, threshold: float, noise: float) -> bool:
    return figure - GATE_MARGIN * noise > threshold


def _by_more_than_chance(noise: float) -> str:
    return f" by more than chance explains (three standard errors: {GATE_MARGIN * noise:.3f})"


def _share_difference_noise(baseline: float, compared: int) -> float:
    """Two standard errors of the difference of two shares near `baseline` over `compared` each (at least one
    unit's worth)."""
    n = max(compared, 1)
    p = min(max(baseline, 1.0 / n), 1.0)
    return 2.0 * math.sqrt(2 * p * (1 - p) / n) + 1.0 / n


def evaluate_privacy(
    stats: DatasetStats,
    table: str,
    train: dict[str, pd.DataFrame],
    validation: dict[str, pd.DataFrame],
    synthetic: dict[str, pd.DataFrame],
    *,
    sensitive: list[str] = (),
    quasi_identifiers: list[str] | None = None,
    max_rows: int = 10_000,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> PrivacyFigures:
    """Privacy figures of `table`, each with its baseline. The frames map every table of the dataset to its
    rows (source columns, keys included); a child table reads its parent's rows from them too.

    `sensitive`: modelled columns an attacker tries to infer; `quasi_identifiers`: the columns the attacker knows
    (default: every other modelled column of the table). `max_rows` bounds the rows (records) sampled per side."""
    if table not in stats.tables:
        raise SynthError("is not a table of the dataset", dataset=stats.dataset, table=table,
                         hint=f"evaluate one of: {', '.join(stats.tables)}")
    if draws < 1:
        raise ValueError(f"table '{table}': draws must be at least 1, not {draws}")
    table_stats = stats.tables[table]
    attacks = _attacks(stats, table_stats, list(sensitive), quasi_identifiers)
    layout = _Layout.of(stats, table_stats)
    sides = [_Units.build(layout, frames) for frames in (train, validation, synthetic)]
    trn, val, syn = sides
    if len(val) < 2 or len(syn) == 0 or len(trn) == 0:
        raise ValueError(f"table '{table}': nothing to compare ({len(trn)} training, {len(val)} validation and "
                         f"{len(syn)} synthetic {layout.unit}; the validation needs at least 2)")

    # each side's pool: a seeded sample of whole units, up to about max_rows records; only pools become points
    cap = layout.unit_cap(trn, max_rows)
    pools = [side.sample(cap, np.random.default_rng([seed, _POOLS, k])) for k, side in enumerate(sides)]
    reference = trn.frame  # quantiles and categories of the features: the whole training table
    space = FeatureSpace(layout.columns, reference)
    points = [space.points(pool.frame) for pool in pools]

    judged = _Tally(len(pools[2])), _Tally(len(pools[1]))  # synthetic units (the share), validation units (floor)
    draw_figures = [_dcr_draw(pools, points, judged, np.random.default_rng([seed, _DRAWS, d])) for d in range(draws)]
    share, floor = (float(np.mean([f[k] for f in draw_figures])) for k in (0, 1))
    auc = _membership_auc(pools, points, cap // 2, np.random.default_rng([seed, _MEMBERSHIP]))
    copied, holdout_copied = _exact_copy_shares(layout, sides, max_rows, np.random.default_rng([seed, _COPIES]))
    texts = [_text_copies(c, train[table], validation[table], synthetic[table], max_rows,
                          np.random.default_rng([seed, _COPIES, k]))
             for k, c in enumerate(layout.own) if c.text_form == "text"]
    risks = [_attribute_risk(column, qis, pools, reference, cap // 2,
                             np.random.default_rng([seed, _ATTRIBUTES, k]))
             for k, (column, qis) in enumerate(attacks)]
    return PrivacyFigures(
        table=table, unit=layout.unit, draws=draws, compared=len(pools[1]) // 2,
        dcr_share=share, dcr_floor=floor, dcr_excess=share - floor,
        dcr_excess_noise=_dcr_excess_noise(judged, draw_figures),
        dcr_draws=draw_figures, membership_auc=auc,
        exact_copy_share=copied, holdout_exact_copy_share=holdout_copied, attribute_risks=risks, text_copies=texts,
        membership_compared=min(cap // 2, len(pools[0]), len(pools[1])),
        copies_compared=min(max_rows, len(syn), len(val)),
    )


# units: rows, or subjects with their context ------------------------------------------------------

@dataclass
class _Layout:
    """What a unit of the table is made of: its own modelled columns, and for a child table its parent's
    (renamed with CONTEXT_PREFIX), found through the first foreign key."""

    table: str
    own: list[ColumnStats]
    context: list[ColumnStats]  # renamed
    parent: TableStats | None
    key: str | None  # the child's column holding its parent's primary key

    @classmethod
    def of(cls, stats: DatasetStats, table: TableStats) -> _Layout:
        own = [table.columns[c] for c in table.column_order if c in table.columns]
        fk = context_key(table.name, table)
        if fk is None:
            return cls(table.name, own, [], None, None)
        parent = stats.tables[fk.references]
        context = [parent.columns[c].model_copy(update={"name": CONTEXT_PREFIX + c})
                   for c in parent.column_order if c in parent.columns]
        return cls(table.name, own, context, parent, fk.column)

    @property
    def unit(self) -> str:
        return "rows" if self.parent is None else "subjects"

    @property
    def columns(self) -> list[ColumnStats]:
        return [*self.own, *self.context]

    def unit_cap(self, train: _Units, max_rows: int) -> int:
        """Units per pool: max_rows rows, or as many subjects as hold about max_rows records in training."""
        if self.parent is None:
            return max_rows
        return max(2, int(max_rows * len(train) / max(len(train.frame), 1)))


@dataclass
class _Units:
    """Records of one side, each unit's records next to each other: unit u holds rows bounds[u]:bounds[u + 1].
    A root table's unit is a row; a child's is a parent row with records in it (a record whose parent is
    missing is a unit of its own, with a null context)."""

    frame: pd.DataFrame  # own columns, then the context columns
    bounds: np.ndarray

    @classmethod
    def build(cls, layout: _Layout, frames: dict[str, pd.DataFrame]) -> _Units:
        df = frames[layout.table]
        own = df[[c.name for c in layout.own]].reset_index(drop=True)
        if layout.parent is None:
            return cls(own, np.arange(len(own) + 1))
        parents = frames[layout.parent.name]
        pk = layout.parent.primary_key
        parents = parents.drop_duplicates(pk)  # a key held twice: its first row is the context
        positions = pd.Index(parents[pk]).get_indexer(df[layout.key])
        names = [c.name[len(CONTEXT_PREFIX):] for c in layout.context]
        context = parents[names].iloc[np.maximum(positions, 0)].reset_index(drop=True)
        context.columns = [c.name for c in layout.context]
        orphan = positions < 0
        if orphan.any():
            context = context.where(~np.repeat(orphan[:, None], len(names), axis=1))
        unit = np.where(orphan, len(parents) + np.cumsum(orphan) - 1, positions)
        order = np.argsort(unit, kind="stable")
        unit = unit[order]
        frame = pd.concat([own, context], axis=1).iloc[order].reset_index(drop=True)
        starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]]) if len(unit) else np.zeros(0, dtype=np.int64)
        return cls(frame, np.r_[starts, len(unit)].astype(np.int64))

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def rows(self, units: np.ndarray) -> np.ndarray:
        """Positions of the records of `units`, unit by unit."""
        units = np.asarray(units, dtype=np.int64)
        lengths = self.bounds[units + 1] - self.bounds[units]
        first = np.repeat(self.bounds[units] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        return first + np.arange(int(lengths.sum()))

    def owners(self, units: np.ndarray) -> np.ndarray:
        """For each record of `units` (in rows() order), the position of its unit in `units`."""
        units = np.asarray(units, dtype=np.int64)
        return np.repeat(np.arange(len(units)), self.bounds[units + 1] - self.bounds[units])

    def sample(self, n: int, rng: np.random.Generator) -> _Units:
        """Up to n whole units, drawn at random (all of them, in order, when there are no more)."""
        if len(self) <= n:
            return self
        units = rng.choice(len(self), size=n, replace=False)
        lengths = self.bounds[units + 1] - self.bounds[units]
        return _Units(self.frame.iloc[self.rows(units)].reset_index(drop=True), np.r_[0, np.cumsum(lengths)])


# attacks to run -----------------------------------------------------------------------------------

def _attacks(stats: DatasetStats, table: TableStats, sensitive: list[str], quasi_identifiers: list[str] | None
             ) -> list[tuple[ColumnStats, list[ColumnStats]]]:
    """(sensitive column, the quasi-identifiers the attacker knows) per attack; unknown columns are the
    user's to fix, before any work is done."""
    modelled = [c for c in table.column_order if c in table.columns]

    def known(name: str, role: str) -> ColumnStats:
        if name not in table.columns:
            raise SynthError(f"{role} column '{name}' is not a modelled column of the table", dataset=stats.dataset,
                             table=table.name, column=name,
                             hint=f"name one of: {', '.join(modelled)} (keys and empty columns are not modelled)")
        return table.columns[name]

    qis = None if quasi_identifiers is None else [known(c, "quasi-identifier") for c in quasi_identifiers]
    attacks = []
    for name in sensitive:
        column = known(name, "sensitive")
        # the attacker does not know the value it is after
        known_columns = [c for c in (qis if qis is not None else map(table.columns.get, modelled)) if c.name != name]
        if not known_columns:
            raise SynthError(f"no quasi-identifiers are left to infer sensitive column '{name}' from",
                             dataset=stats.dataset, table=table.name, column=name,
                             hint="name quasi-identifiers other than the sensitive column")
        attacks.append((column, known_columns))
    return attacks


# DCR share against its floor ----------------------------------------------------------------------

def _dcr_draw(pools: list[_Units], points: list[np.ndarray], judged: tuple[_Tally, _Tally],
              rng: np.random.Generator) -> tuple[float, float]:
    """(share, floor) of one draw: S and B judged against T and A, each point's verdict tallied by its unit."""
    trn, val, syn = pools
    order = rng.permutation(len(val))
    half = len(val) // 2
    a, b = order[:half], order[half : 2 * half]
    t = rng.choice(len(trn), size=min(half, len(trn)), replace=False)
    s = rng.choice(len(syn), size=min(half, len(syn)), replace=False)
    p_trn, p_val, p_syn = points
    p_t, p_a = p_trn[trn.rows(t)], p_val[val.rows(a)]
    figures = []
    for tally, side, side_points, units in ((judged[0], syn, p_syn, s), (judged[1], val, p_val, b)):
        closer = _closer(side_points[side.rows(units)], p_t, p_a)
        tally.add(units[side.owners(units)], closer)
        figures.append(float(closer.mean()) if len(closer) else float("nan"))
    return figures[0], figures[1]


def _closer(points: np.ndarray, train: np.ndarray, holdout: np.ndarray) -> np.ndarray:
    """Per point, 1 if it lies closer to `train` than to `holdout`, 0 if farther, ½ on a tie (quality.dcr's
    rule): their mean is the share."""
    if len(points) == 0:
        return np.zeros(0)
    to_train, _ = nearest(points, train)
    to_holdout, _ = nearest(points, holdout)
    tie = np.abs(to_train - to_holdout) <= TIE
    return np.where(tie, 0.5, (to_train < to_holdout).astype(float))


def _dcr_excess_noise(judged: tuple[_Tally, _Tally], draw_figures: list[tuple[float, float]]) -> float:
    """Two standard errors of the excess: the share's and the floor's over the units judged (which units the
    pools hold: repeated draws cannot average that away), plus the draws' own spread over their number (which
    training and validation rows each draw judges against). The second term counts part of the first again:
    over real unseen rows posing as synthetic (bench/privacy_noise.py, five tables) this is 2.0 to 2.5 standard
    deviations of the excess; the first term alone was 1.8 to 2.1."""
    excesses = [share - floor for share, floor in draw_figures]
    spread = float(np.var(excesses, ddof=1)) / len(excesses) if len(excesses) > 1 else 0.0
    return 2.0 * math.sqrt(judged[0].variance() + judged[1].variance() + spread)


class _Tally:
    """The verdicts on one pool's points over all draws, summed and counted per unit. The draws judge the same
    units again (a small pool's every unit in every draw) and a subject through all its records, so the
    verdicts are not independent; the units are. The standard error of their mean is the ratio estimator's
    over units as clusters: it holds what repeated draws average away and what they cannot (which units the
    pool holds)."""

    def __init__(self, units: int):
        self.sums = np.zeros(units)
        self.counts = np.zeros(units)

    def add(self, units: np.ndarray, verdicts: np.ndarray) -> None:
        np.add.at(self.sums, units, verdicts)
        np.add.at(self.counts, units, 1.0)

    def variance(self) -> float:
        """The variance of the mean verdict (0 with fewer than two units judged)."""
        seen = self.counts > 0
        sums, counts = self.sums[seen], self.counts[seen]
        k = len(sums)
        if k < 2:
            return 0.0
        mean = sums.sum() / counts.sum()
        return float(k / (k - 1) * np.square(sums - mean * counts).sum() / counts.sum() ** 2)


# membership inference -----------------------------------------------------------------------------

def _membership_auc(pools: list[_Units], points: list[np.ndarray], most: int, rng: np.random.Generator) -> float:
    """ROC AUC of −(distance to the synthetic data) telling training units (members) from as many validation
    units; a subject's distance is the mean of its records'."""
    trn, val, syn = pools
    n = min(len(trn), len(val), max(most, 1))
    scores = []
    for side, side_points in ((trn, points[0]), (val, points[1])):
        units = rng.choice(len(side), size=n, replace=False)
        distance, _ = nearest(side_points[side.rows(units)], points[2])
        owners = side.owners(units)
        scores.append(-np.bincount(owners, weights=distance, minlength=n) / np.bincount(owners, minlength=n))
    return roc_auc(*scores)


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """ROC AUC of scores telling `positives` from `negatives`: the Mann-Whitney U over both counts, ties counting
    half, from pandas' average ranks (as sklearn's roc_auc_score gives; importing sklearn alone took 1.3 s of a
    publication's audit)."""
    ranks = pd.Series(np.concatenate([positives, negatives])).rank().to_numpy()
    n, m = len(positives), len(negatives)
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * m))


# attribute inference ------------------------------------------------------------------------------

def _attribute_risk(column: ColumnStats, qis: list[ColumnStats], pools: list[_Units],
                    reference: pd.DataFrame, most: int, rng: np.random.Generator) -> AttributeRisk:
    """The nearest row on the quasi-identifiers gives the guess; scored on training rows, with the synthetic
    rows as the attacker's data, then as many validation rows."""
    trn, val, syn = pools
    targets = trn.sample(max(most, 1), rng).frame
    n = min(len(val.frame), len(syn.frame))
    space = FeatureSpace(qis, reference)
    known = [space.points(targets)]
    guesses = []
    for pool in (syn, val):
        rows = pool.frame.iloc[np.sort(rng.choice(len(pool.frame), size=n, replace=False))].reset_index(drop=True)
        _, found = nearest(known[0], space.points(rows))
        guesses.append(rows[column.name].iloc[found].reset_index(drop=True))
    truth = targets[column.name].reset_index(drop=True)
    synthetic_score, holdout_score = (float(_hits(truth, guess, column, reference).mean()) for guess in guesses)
    return AttributeRisk(column=column.name, quasi_identifiers=[c.name for c in qis], synthetic_score=synthetic_score,
                         holdout_score=holdout_score, excess=synthetic_score - holdout_score)


def _hits(truth: pd.Series, guess: pd.Series, column: ColumnStats, reference: pd.DataFrame) -> np.ndarray:
    """Which guesses are right: numbers and dates when they fall in the truth's decile of the training data
    (lat/long pairs: its grid cell), anything else when equal; a null is right for a null."""
    if _is_continuous(column) or column.text_form == "lat_long":
        codes, _ = _bin_codes([truth.to_frame(column.name), guess.to_frame(column.name)], [column], reference)
        return codes[0][0] == codes[1][0]
    return _comparable(truth, column).to_numpy() == _comparable(guess, column).to_numpy()


# exact copies -------------------------------------------------------------------------------------

def _exact_copy_shares(layout: _Layout, sides: list[_Units], most: int, rng: np.random.Generator
                       ) -> tuple[float, float]:
    """Share of synthetic units (up to `most`), then of validation units, identical to some training unit."""
    trn, val, syn = sides
    seen = _fingerprints(layout, trn)
    shares = [float(np.isin(_fingerprints(layout, side.sample(most, rng)), seen).mean()) for side in (syn, val)]
    return shares[0], shares[1]


def _text_copies(column: ColumnStats, train: pd.DataFrame, validation: pd.DataFrame, synthetic: pd.DataFrame,
                 most: int, rng: np.random.Generator) -> TextCopies:
    """Shares of written texts (up to `most`), then of holdout texts, identical to some training text, and to
    some rare one."""
    name = column.name
    seen = set(train[name].dropna().astype(str))
    rare = seen - {c for c in column.categories or () if isinstance(c, str)}
    shares = []
    for frame in (synthetic, validation):
        texts = frame[name].dropna().astype(str).to_numpy()
        texts = texts[rng.permutation(len(texts))[:most]]
        shares.append((float(np.mean([t in seen for t in texts])) if len(texts) else 0.0,
                       float(np.mean([t in rare for t in texts])) if len(texts) else 0.0))
    compared = min(most, int(synthetic[name].notna().sum()), int(validation[name].notna().sum()))
    return TextCopies(column=name, exact_copy_share=shares[0][0], holdout_exact_copy_share=shares[1][0],
                      rare_copy_share=shares[0][1], holdout_rare_copy_share=shares[1][1], compared=compared)


def _fingerprints(layout: _Layout, units: _Units) -> np.ndarray:
    """A 64-bit hash per unit, equal for units holding equal values. A subject's is its parent row's values and
    its records as a multiset: the sum of their scrambled hashes, which their order does not change (ordering
    them by order_by, or else by all columns, would give the same: a record holds its own order_by value)."""
    own = _row_hashes(units.frame, layout.own)
    if layout.parent is None:
        return own
    scrambled = pd.util.hash_pandas_object(pd.Series(own), index=False).to_numpy()
    starts = units.bounds[:-1]
    records = np.add.reduceat(scrambled, starts) if len(starts) else np.zeros(0, dtype=np.uint64)  # wraps around
    context = _row_hashes(units.frame.iloc[starts], layout.context)
    subject = pd.DataFrame({"context": context, "records": records, "count": np.diff(units.bounds)})
    return pd.util.hash_pandas_object(subject, index=False).to_numpy()


def _row_hashes(frame: pd.DataFrame, columns: list[ColumnStats]) -> np.ndarray:
    if not columns:
        return np.zeros(len(frame), dtype=np.uint64)
    parts = {c.name: _hashable_numbers(frame[c.name]) if c.kind == "numeric" else _comparable(frame[c.name], c).to_numpy()
             for c in columns}
    return pd.util.hash_pandas_object(pd.DataFrame(parts, index=range(len(frame))), index=False).to_numpy()


def _hashable_numbers(values: pd.Series) -> np.ndarray:
    """Numbers as the bits of their float64, equal exactly where the numbers are (326 and 326.0 alike, -0.0 and
    0.0 alike, every null one NaN): what `_comparable` gives, without writing each number as text (most of the
    exact-copy figures' time on a long history's 40,000 records)."""
    numbers = _floats(values) + 0.0
    numbers[np.isnan(numbers)] = np.nan
    return numbers.view(np.uint64)


def _floats(values: pd.Series) -> np.ndarray:
    """A number column's values as float64, NaN where null or not a number."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _comparable(values: pd.Series, column: ColumnStats) -> pd.Series:
    """Values as text, equal exactly where the values are: 326 and 326.0 alike, a date whatever its dtype, unit
    or zone (as nanoseconds since 1970, UTC), a null as NULL_TEXT."""
    if column.kind == "datetime":
        counts, missing, unit_ns = _date_counts(values, column)
        text = (counts.astype(object) * unit_ns).astype(str)  # Python integers: no overflow at any unit
    elif column.kind == "numeric":
        numbers = _floats(values)
        text, missing = numbers.astype(str), np.isnan(numbers)
    else:
        text, missing = values.astype(str).to_numpy(dtype=object), values.isna().to_numpy()
    return pd.Series(np.where(missing, NULL_TEXT, text).astype(object), index=values.index)
