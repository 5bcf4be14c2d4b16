"""Per-column statistics of the training partition: the facts every backend needs, protected.

Privacy rules live here, so that every backend inherits them (the mechanisms: value_protection.py). They
count units: distinct rows, or for child tables distinct root keys (the subject a row belongs to, reached
through the first foreign keys up the tree, see split.py), so that one subject with many records cannot make
its values look common. With the default rare rule (threshold `privacy.rare_threshold`, RARE_THRESHOLD unless
set):
- a category held by fewer than the threshold's distinct units is not listed, and so never appears in the
  output; backends emit `RARE_TOKEN` in its place;
- min and max are the threshold-th smallest of the units' minima and the threshold-th largest of their maxima
  (for rows: the threshold-th smallest and largest values), so no single unit's extreme values are revealed;
  quantiles are taken after clipping to them;
- infinities are kept only when held by enough units;
- character-encoded text keeps, per position, only characters held by enough units, and no longer than
  enough units reach; lat/long pairs keep only the 1° cells held by enough units.
With `privacy.value_protection: false` every value is kept; with differential privacy the counts and ranges are
noisy (value_protection.py), and `DatasetStats.privacy` says which protection made them and the ε it spent.

The facts are backend-neutral; how to encode a column is each backend's choice (its encode stage):
- kind: categorical, numeric or datetime;
- text comes in a form: categories, codes (short text with mostly rare values: postcodes, plates, product
  codes; kept characters per position) or lat_long ("lat, long" pairs; kept 1° cells);
- a number is discrete when it has few distinct values: only values training holds may come out (a
  product promise the blocking schema check enforces); otherwise it is continuous, with the values many
  rows hold exactly (heaping: incomes of 3.0 among 3.0471) listed, and quantiles with and without them;
- dates have their parts (year, month, day [, hour, minute, second]) and, when stored as text, a format.

A per-column `encoding:` in synth.yaml is the backend's word; the backend maps it to one of the `HINTS`
here (`Backend.column_encodings`), which fixes the kind, form or discreteness, and the stats carry the
word on (`requested_encoding`) for the backend's own choice.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from synth_assets.config import DatasetSpec, ForeignKey
from synth_assets.errors import SynthError
from synth_assets.privacy_budget import VALUE_PROTECTION_DELTA_SHARE, default_delta, new_release
from synth_assets.stages.split import context_key, table_order
from synth_assets.free_text import (CHARACTERS_PER_WORD, DP_CHARACTERS_PER_SUBJECT, DP_WORDS_PER_SUBJECT,
                                    MAX_KEPT_WORDS, TEXT_AUTO_MIN_RARE_SHARE, WORD, reads_as_text, words)
from synth_assets.stages.value_protection import (FREE_TEXT_SHARES, LAT_LONG_SHARES, TEXT_SHARES, ColumnProtection,
                                                  Protection, ValueTree)

RARE_THRESHOLD = 5  # the default of privacy.rare_threshold
RARE_TOKEN = "_RARE_"
# numeric columns with few distinct values are modelled as categories, so that only values seen in training
# come out: up to DISCRETE_MAX_VALUES always (rare ones move to their nearest kept value), and below
# DISCRETE_AUTO_MAX_VALUES when the kept values hold nearly every row, as the reference engine decides
DISCRETE_MAX_VALUES = 30
DISCRETE_AUTO_MAX_VALUES = 100
DISCRETE_AUTO_MIN_KEPT_SHARE = 0.999
# fewer training rows than twice the rare threshold cannot be synthesized: rare-value protection would hide
# nearly everything
MIN_TRAINING_ROWS = 2 * RARE_THRESHOLD
N_QUANTILES = 101
# digits after the point counted up to this many; a column needing more (float32 artefacts like 3.04999995231628)
# has no grain to keep
MAX_DECIMALS = 8
# with DP, a number's decimals take this share of its budget, and are the fewest beyond which the values' noisy
# counts by their decimals stay within this many of their noise's standard deviations
DECIMALS_SHARE = 0.05
DECIMALS_Z = 3.0
# continuous numbers list the values held by at least this share of rows (and by enough units); at most this many
HEAPED_MIN_SHARE = 0.001
HEAPED_MAX_VALUES = 250
# text is a code (drawn character by character, not as categories) when categories would lose most rows as
# rare, and the values are short
CODE_AUTO_MIN_RARE_SHARE = 0.5
CODE_AUTO_MAX_LENGTH = 20
CODE_MAX_LENGTH = 50  # characters are kept per position up to this length
LAT_LONG_MAX_DECIMALS = 6  # 0.000001° is about 10 cm
DATETIME_PARTS = ("year", "month", "day", "hour", "minute", "second")
DATE_RESOLUTION_NS = {"day": 86_400e9, "hour": 3_600e9, "minute": 60e9, "second": 1e9}

Kind = Literal["categorical", "numeric", "datetime"]
TextForm = Literal["category", "code", "lat_long", "text"]
# what a per-column override can ask the stats to treat a column as; backends map their encodings to these
ORDER_STEP = "@step."  # + order column: the name of its steps between records (TableStats.order_steps)
HINTS = ("categorical", "code", "lat_long", "text", "numeric", "discrete", "continuous", "datetime")
NUMERIC_HINTS = ("numeric", "discrete", "continuous")
TEXT_HINTS = ("code", "lat_long", "text")

LAT_LONG_PATTERN = r"^\s*(?P<lat>[-+]?\d{1,3}(?:\.\d+)?)(?P<separator>\s*[,;]\s*)(?P<long>[-+]?\d{1,3}(?:\.\d+)?)\s*$"


class ColumnStats(BaseModel):
    name: str
    dtype: str = Field(description="pandas dtype of the source column; the synthetic column gets it back")
    kind: Kind
    text_form: TextForm | None = Field(None, description="for text: categories, codes or lat/long pairs")
    discrete: bool = Field(False, description="a number with few values: only the kept `categories` may come out")
    requested_encoding: str | None = Field(None, description="the encoding synth.yaml asks the backend for")
    null_share: float
    n_unique: int
    categories: list | None = Field(
        None, description="values kept (held by enough units), most frequent first; for a continuous number, "
                          "the values many rows hold exactly")
    category_shares: list[float] | None = None
    rare_share: float = 0.0
    min: float | None = None
    max: float | None = None
    quantiles: list[float] | None = None
    quantile_noise: float | None = Field(
        None, description="with DP: how far the quantiles may be off, as a share of the mass (two standard errors of "
                          "the noisy running count they come from, at its widest)")
    rest_quantiles: list[float] | None = Field(
        None, description="a continuous number's quantiles without its exactly held values (`categories`)")
    is_integer: bool = False
    decimals: int | None = Field(None, description="digits after the point seen in the source")
    datetime_format: str | None = Field(None, description="strftime format when the source holds dates as text")
    datetime_parts: list[str] | None = Field(None, description="year, month, day and the time parts not always 0")
    characters: list[str] | None = Field(None, description="per position, the characters kept, most frequent first")
    lat_long_cells: list[int] | None = Field(
        None, description="1° cells kept, as floor(lat + 90) * 360 + floor(long + 180)")
    lat_long_separator: str | None = None
    infinite_shares: dict[str, float] | None = Field(
        None, description="share of rows holding 'inf' or '-inf', for those held by enough rows")
    words: list[str] | None = Field(
        None, description="free text: the words (lower case) held by enough units, most held first; no other word "
                          "comes out")
    text_characters: str | None = Field(None, description="free text: the characters held by enough units")
    text_lengths: list[float] | None = Field(None, description="free text: quantiles of its length in characters")
    max_length: int | None = Field(None, description="free text: the length enough units reach; longer texts are cut")


class TableStats(BaseModel):
    name: str
    rows: int
    primary_key: str | None
    foreign_keys: list[ForeignKey]
    column_order: list[str]
    dtypes: dict[str, str] = Field(description="pandas dtype of every source column, keys included")
    columns: dict[str, ColumnStats] = Field(description="modelled columns (keys excluded)")
    empty_columns: list[str] = Field(default_factory=list, description="columns without a value in training: "
                                                                      "synthesized as all null")
    order_by: list[str] = Field(default_factory=list, description="columns ordering records under their parent")
    sequence_lengths: dict[int, float] | None = Field(
        None, description="a child table's records per parent row -> share of parent rows; lengths beyond the "
                          "one enough parents reach count as that one")
    order_increases: bool = Field(False, description="the first order_by column rises strictly under every parent "
                                                     "(no parent's records share a value, none is null)")
    order_steps: ColumnStats | None = Field(
        None, description="a child table whose first order_by column is a date or a number without nulls: its step "
                          "from the previous record of the same parent (days for dates, seconds where they have "
                          "times of day; the number's own units), protected as any column, for backends that model "
                          "histories by the time between records")


class ValueProtection(BaseModel):
    """How the stats were protected: what the report, the model's ε and `show` say about them."""

    mode: Literal["rare_values", "off", "differential_privacy"] = "rare_values"
    rare_threshold: int = RARE_THRESHOLD
    epsilon: float = Field(0.0, description="ε value protection spent (differential privacy only)")
    delta: float = Field(0.0, description="δ value protection spent (its thresholds over values seen in the data)")
    delta_total: float | None = Field(None, description="δ of the dataset's whole guarantee (differential privacy)")
    subjects: int = Field(0, description="training subjects: the unit of privacy")
    release: str = Field("", description="this run of the stats: a model counts its ε once")


class DatasetStats(BaseModel):
    dataset: str
    tables: dict[str, TableStats]
    privacy: ValueProtection = Field(default_factory=ValueProtection)


def compute_stats(spec: DatasetSpec, train: dict[str, pd.DataFrame], *, dataset: str,
                  hints: dict[str, str] | None = None) -> DatasetStats:
    """`hints` maps the per-column `encoding:` words of synth.yaml to `HINTS`: the backend's `column_encodings`
    (default: the words of `HINTS` themselves, which every backend takes)."""
    if hints is None:
        hints = {hint: hint for hint in HINTS}
    protection, privacy = dataset_protection(spec, train)
    tables = {}
    for name, table_spec in spec.tables.items():
        df = train[name]
        least = 2 * protection.threshold if protection.enabled else 2
        if len(df) < max(least, 2):
            raise SynthError(f"has {len(df)} training rows; at least {least} are needed, since values held by "
                             f"fewer than {protection.threshold} rows are never shown", dataset=dataset, table=name,
                             hint="synthesize a larger table, or lower privacy.rare_threshold")
    units = table_units(spec, train)
    for name, table_spec in spec.tables.items():
        df = train[name]
        keys = {table_spec.primary_key, *(fk.column for fk in table_spec.foreign_keys)} - {None}
        unit = units[name]
        columns, empty = {}, []
        for column in df.columns:
            if column in keys:
                continue
            if df[column].isna().all():  # nothing to learn: the synthetic column is all null too
                empty.append(str(column))
                continue
            override = table_spec.columns.get(column)
            requested = override.encoding if override and override.encoding != "auto" else None
            columns[column] = column_stats(df[column], unit, requested=requested,
                                           hint=hints.get(requested) if requested else None,
                                           where=(dataset, name, column), protection=protection.column())
        fk = context_key(name, table_spec)
        lengths = None if fk is None else sequence_lengths(
            df[fk.column], train[fk.references][spec.tables[fk.references].primary_key], protection.column(),
            units[fk.references])
        steps = None
        if fk is not None and table_spec.order_by and table_spec.time_steps and table_spec.order_by[0] in columns:
            steps = order_steps(df, fk.column, table_spec.order_by, columns[table_spec.order_by[0]], unit,
                                where=(dataset, name, ORDER_STEP + table_spec.order_by[0]),
                                protection=protection.column())
        tables[name] = TableStats(
            name=name, rows=len(df), primary_key=table_spec.primary_key, foreign_keys=table_spec.foreign_keys,
            column_order=[str(c) for c in df.columns], dtypes={str(c): str(t) for c, t in df.dtypes.items()},
            columns=columns, empty_columns=empty, order_by=table_spec.order_by, sequence_lengths=lengths,
            order_increases=fk is not None and bool(table_spec.order_by)
            and rises_strictly(df[fk.column], df[table_spec.order_by[0]]), order_steps=steps,
        )
    return DatasetStats(dataset=dataset, tables=tables, privacy=privacy)


def dataset_protection(spec: DatasetSpec, train: dict[str, pd.DataFrame]) -> tuple[Protection, ValueProtection]:
    """The protection the dataset's privacy section and differential privacy ask for. With DP, ε and δ are split
    over every modelled column and each child table's sequence lengths."""
    subjects = len(train[next(iter(spec.tables))])  # the root table is listed first
    settings = spec.privacy
    dp = spec.differential_privacy
    if dp is None:
        protection = Protection(threshold=settings.rare_threshold, enabled=settings.value_protection)
        return protection, ValueProtection(mode=protection.mode, rare_threshold=settings.rare_threshold,
                                           subjects=subjects, release=new_release())
    delta_total = dp.delta if dp.delta is not None else default_delta(subjects)
    keys = {name: {t.primary_key, *(fk.column for fk in t.foreign_keys)} for name, t in spec.tables.items()}
    # each column, each child table's lengths, and an ordered child table's steps between records
    charges = sum(len([c for c in train[name].columns if c not in keys[name]]) + bool(t.foreign_keys)
                  + bool(t.foreign_keys and t.order_by and t.time_steps) for name, t in spec.tables.items())
    delta = delta_total * VALUE_PROTECTION_DELTA_SHARE
    protection = Protection(threshold=settings.rare_threshold, epsilon=dp.value_protection_epsilon, delta=delta,
                            columns=max(charges, 1))
    return protection, ValueProtection(mode=protection.mode, rare_threshold=settings.rare_threshold,
                                       epsilon=dp.value_protection_epsilon, delta=delta, delta_total=delta_total,
                                       subjects=subjects, release=new_release())


def time_numbers(values: pd.Series, col: ColumnStats) -> tuple[pd.Series, str]:
    """A date or number column as numbers for steps between records, and their unit: days for dates, seconds
    for dates with times of day, the number's own units."""
    if col.kind != "datetime":
        return pd.to_numeric(values, errors="coerce").astype(float), ""
    stamps = pd.to_datetime(values, errors="coerce", format="ISO8601" if col.datetime_format else None)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    with_time = any(part in (col.datetime_parts or []) for part in ("hour", "minute", "second"))
    unit = "s" if with_time else "D"
    return (stamps - pd.Timestamp(0)) / pd.Timedelta(1, unit=unit), unit


def order_steps(df: pd.DataFrame, parent: str, order_by: list[str], col: ColumnStats, unit: pd.Series | None, *,
                where: tuple, protection: ColumnProtection) -> ColumnStats | None:
    """The protected stats of each record's step from the previous record of its parent, in the order column's
    units (TableStats.order_steps); None where the order column is not a date or number, or has nulls."""
    if col.kind not in ("datetime", "numeric") or col.null_share > 0 or col.text_form:
        return None
    ordered = df.sort_values([parent, *order_by], kind="stable")
    numbers, _ = time_numbers(ordered[order_by[0]], col)
    steps = numbers.groupby(ordered[parent].to_numpy()).diff()
    if col.kind == "datetime" or col.is_integer:
        steps = steps.round()
    units = None if unit is None else pd.Series(unit.loc[ordered.index].to_numpy(), index=steps.index)
    held = steps.notna().to_numpy()  # a first record has no step
    if held.sum() < 2:
        return None
    try:
        return column_stats(steps[held].reset_index(drop=True),
                            None if units is None else units[held].reset_index(drop=True),
                            hint="numeric", where=where, protection=protection)
    except SynthError:  # too few subjects hold a range of steps (under DP's noise): the times stay values
        return None


def rises_strictly(parents: pd.Series, order: pd.Series) -> bool:
    """Whether no parent has two records with the same order value (so sorted, each record's value is above the
    previous one's), and no order value is null."""
    if order.isna().any():
        return False
    return not pd.DataFrame({"parent": parents.to_numpy(), "order": order.to_numpy()}).duplicated().any()


def records_per_parent(child_keys: pd.Series, parent_keys: pd.Series) -> np.ndarray:
    """How many child records each parent row has (0 included), in the parents' order."""
    return child_keys.value_counts().reindex(parent_keys, fill_value=0).to_numpy(dtype=np.int64)


def sequence_lengths(child_keys: pd.Series, parent_keys: pd.Series,
                     protection: ColumnProtection | None = None, parent_units: pd.Series | None = None) -> dict[int, float]:
    """Share of parent rows with each number of child records (0 included). Lengths longer than the one
    the rare threshold's parents reach count as that one, so no single subject's long history shows (with DP:
    the longest length whose noisy count is kept, and the shares from the noisy counts)."""
    protection = protection or Protection().column()
    per_parent = pd.Series(records_per_parent(child_keys, parent_keys))
    if len(per_parent) == 0:
        return {}
    if protection.budget is None:
        ordered = np.sort(per_parent.to_numpy())[::-1]
        cap = ordered[min(protection.threshold, len(ordered)) - 1]
        shares = np.minimum(per_parent, cap).value_counts(normalize=True).sort_index()
        return {int(length): float(share) for length, share in shares.items()}
    units = None if parent_units is None else pd.Series(parent_units.to_numpy(), index=per_parent.index)
    tree = protection.value_tree(protection.one_per_subject(per_parent.astype(float), units), 1.0)
    # lengths are whole numbers, a bin each: where too few stand out of the noise, every bin's noisy count serves
    # (the values alone would leave every subject one record)
    counts = tree.exact_values()
    counts = tree.grid_counts() if counts is None else counts
    if counts is None or counts.empty:
        return {1: 1.0}
    counts = counts.sort_index()
    return {int(length): float(count / counts.sum()) for length, count in counts.items()}


def table_units(spec: DatasetSpec, tables: dict[str, pd.DataFrame]) -> dict[str, pd.Series | None]:
    """Per table, the unit each row belongs to, for counting how many hold a value: a root's primary key, or
    None (each row its own unit) when it has none; for a child, its root row, reached by following the
    first foreign key up the tree. In a child, units are integer codes of the root rows; a row whose context
    key is null, or matches no parent row, is a unit of its own."""
    units: dict[str, pd.Series | None] = {}
    for name in table_order(spec):
        df = tables[name]
        fk = context_key(name, spec.tables[name])
        if fk is None:
            pk = spec.tables[name].primary_key
            units[name] = df[pk] if pk else None
            continue
        parent = tables[fk.references]
        parent_units = pd.Series(pd.factorize(units[fk.references])[0])  # the parent has a key, so a unit
        positions = pd.Index(parent[spec.tables[fk.references].primary_key]).get_indexer(df[fk.column])
        codes = np.where(positions >= 0, parent_units.to_numpy()[np.maximum(positions, 0)], -1)
        alone = codes < 0
        codes[alone] = len(parent_units) + np.arange(int(alone.sum()))  # beyond every parent's code
        units[name] = pd.Series(codes, index=df.index, name=f"{name} root")
    return units


def column_stats(series: pd.Series, unit: pd.Series | None, *, requested: str | None = None,
                 hint: str | None = None, where: tuple, protection: ColumnProtection | None = None) -> ColumnStats:
    """`requested`: the override's word in synth.yaml (for messages, and carried on for the backend);
    `hint`: what it means here (one of `HINTS`); `protection`: the column's value protection (default: the rare
    rule at RARE_THRESHOLD)."""
    dataset, table, column = where
    protection = protection or Protection().column()
    asked = (hint, requested or hint)
    kind, values, datetime_format = _infer_kind(series, asked, where)
    null_share = float(series.isna().mean())
    if protection.budget is not None:
        # with DP every query sees one value per subject (the number of subjects is public); format facts come
        # from every row (the schema)
        values, unit = protection.one_per_subject(values, unit), None
        if kind == "categorical":
            nulls = protection.count(int(values.isna().sum()), TEXT_SHARES["nulls"])
            null_share = nulls / max(len(values), 1)
            protection.present = max(len(values) - nulls, 0.0)
    base = dict(name=str(column), dtype=str(series.dtype), kind=kind, null_share=null_share,
                n_unique=int(values.dropna().nunique()), datetime_format=datetime_format, requested_encoding=requested)
    if kind == "categorical":
        out = _text_stats(values, unit, hint, where, protection)
    elif kind == "numeric":
        out = _numeric_stats(values, unit, hint, where, protection, rows=series)
    else:
        out = _datetime_stats(values, unit, protection, where)
    if protection.budget is not None:  # nulls come from the value tree; distinct values only as far as kept
        base["null_share"] = float(min(out.pop("null_share", base["null_share"]), 1.0))
        base["n_unique"] = len(out.get("categories") or [])
    return ColumnStats(**base, **out)


# kinds ---------------------------------------------------------------------------------------------

def _infer_kind(series: pd.Series, asked: tuple, where: tuple) -> tuple[str, pd.Series, str | None]:
    dataset, table, column = where
    forced, word = asked  # the hint, and the user's word for it
    if forced == "categorical" or pd.api.types.is_bool_dtype(series):
        return "categorical", series.astype(object).where(series.notna(), None), None
    if pd.api.types.is_datetime64_any_dtype(series):
        if forced not in (None, "datetime"):
            raise SynthError(f"dates cannot be encoded as {word}", dataset=dataset, table=table, column=column,
                             hint="use datetime or categorical, or remove the override")
        # time zones are modelled in UTC and given back by the schema stage
        return "datetime", series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz is not None else series, None
    if pd.api.types.is_numeric_dtype(series):
        if forced == "datetime":
            raise SynthError("numbers cannot be encoded as datetime", dataset=dataset, table=table, column=column,
                             hint="store the column as dates, or remove the override")
        if forced in TEXT_HINTS:
            raise SynthError(f"numbers cannot be encoded as {word}", dataset=dataset, table=table, column=column,
                             hint="store the column as text, or remove the override")
        return "numeric", series, None
    text = series.astype(object).where(series.notna(), None).map(lambda v: v if v is None else str(v))
    if forced in TEXT_HINTS:
        return "categorical", text, None
    # text: dates written as text stay text in the output, in the same format
    parsed, fmt = _parse_dates(series)
    if parsed is not None and forced in (None, "datetime"):
        return "datetime", parsed, fmt
    if forced == "datetime":
        raise SynthError("values are not dates", dataset=dataset, table=table, column=column,
                         hint="use ISO dates (2024-01-31) or remove the override")
    if forced in NUMERIC_HINTS:
        numbers = pd.to_numeric(series, errors="coerce")
        bad = series.notna() & numbers.isna()
        if bad.any():
            raise SynthError(f"value {series[bad].iloc[0]!r} is not a number", dataset=dataset, table=table,
                             column=column, hint=f"clean the column or remove the '{word}' override")
        return "numeric", numbers, None
    return "categorical", text, None


def _parse_dates(series: pd.Series) -> tuple[pd.Series | None, str | None]:
    non_null = series.dropna()
    if non_null.empty or not non_null.map(lambda v: isinstance(v, str)).all():
        return None, None
    sample = non_null.iloc[:1000]
    if not sample.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return None, None
    parsed = pd.to_datetime(series, errors="coerce", format="ISO8601")
    if (parsed.isna() & series.notna()).any():
        return None, None
    has_time = bool((parsed.dropna() != parsed.dropna().dt.normalize()).any())
    return parsed, "%Y-%m-%d %H:%M:%S" if has_time else "%Y-%m-%d"


# text: categorical, character, lat_long ------------------------------------------------------------

def _text_stats(values: pd.Series, unit: pd.Series | None, forced: str | None, where: tuple,
                protection: ColumnProtection) -> dict:
    """`values` (and `unit`) are what the queries see: every row, or with DP one value per subject."""
    if forced == "text" and protection.budget is not None:  # its own split of the column's budget
        categories, shares, rare_share = _protected_categories(values, unit, protection, FREE_TEXT_SHARES["values"])
        return dict(categories=categories, category_shares=shares, rare_share=rare_share, text_form="text",
                    **_free_text_stats(values, unit, protection))
    categories, shares, rare_share = _protected_categories(values, unit, protection, TEXT_SHARES["values"])
    out = dict(categories=categories, category_shares=shares, rare_share=rare_share)
    form = {"categorical": "category", "code": "code", "lat_long": "lat_long", "text": "text"}.get(forced)
    is_text = form in TEXT_HINTS or _all_text(values.dropna())
    if not is_text:
        if not categories:  # only text has a _RARE_ token to show instead
            raise SynthError(f"every value is held by fewer than {_enough(protection)}", dataset=where[0],
                             table=where[1], column=where[2], hint="drop the column, or encode it as numbers")
        return dict(out, text_form="category")
    if form in (None, "lat_long"):
        pairs = _lat_long_stats(values, unit, protection)
        if pairs is not None:
            return dict(out, text_form="lat_long", **pairs)
        if form == "lat_long":
            raise SynthError(_why_not_lat_long(values, protection), dataset=where[0], table=where[1],
                             column=where[2], hint="use categorical or character, or remove the override")
    if form is None and _free_text(values, rare_share, protection):
        form = "text"
    if form == "text":
        return dict(out, text_form="text", **_free_text_stats(values, unit, protection))
    length = _protected_length(values.dropna().str.len(), unit, protection)
    if form is None:
        wanted = rare_share >= CODE_AUTO_MIN_RARE_SHARE and 0 < length <= CODE_AUTO_MAX_LENGTH
        form = "code" if wanted else "category"
    if form == "code":
        if length > CODE_MAX_LENGTH:
            raise SynthError(f"values are up to {length} characters long; text codes are at most "
                             f"{CODE_MAX_LENGTH}", dataset=where[0], table=where[1], column=where[2],
                             hint="use categorical, or remove the override")
        out["characters"] = _kept_characters(values, unit, length, protection)
    return dict(out, text_form=form)


def _free_text(values: pd.Series, rare_share: float, protection: ColumnProtection) -> bool:
    """Whether a string column reads as free text (names, titles, comments): see free_text.py. Never found
    with differential privacy, whose rule would look at every text: there `encoding: text` asks for it."""
    present = values.dropna()
    if protection.budget is not None or present.empty or rare_share < TEXT_AUTO_MIN_RARE_SHARE:
        return False
    return float(present.map(reads_as_text).mean()) >= 0.5


def _free_text_stats(values: pd.Series, unit: pd.Series | None, protection: ColumnProtection) -> dict:
    """The facts a text model and the privacy filter need: the words and characters enough units hold, the
    length enough reach, and the length's quantiles. With DP (one text per subject): words and characters as
    noisy counts of the subjects holding them (`kept_sets`): the characters of kept words, and the other
    characters (spaces, punctuation) counted apart, the length's quantiles from its noisy counts."""
    present = values.dropna()
    lengths = present.str.len()
    if protection.budget is not None:
        held = protection.kept(lengths, None, FREE_TEXT_SHARES["length"]).sort_index()
        quantiles = _weighted_quantiles(held.index.to_numpy(dtype=float), held.to_numpy(dtype=float))
        max_length = int(held.index.max()) if len(held) else 0
        # how many words and other characters a subject adds: as many as a text of the (noisy) median length
        # holds, within the caps; the fewer, the less noise
        median = quantiles[10] if quantiles else 0.0
        most_words = int(np.clip(np.ceil(median / CHARACTERS_PER_WORD) + 1, 2, DP_WORDS_PER_SUBJECT))
        most_between = int(np.clip(np.ceil(median / (2 * CHARACTERS_PER_WORD)) + 1, 2, DP_CHARACTERS_PER_SUBJECT))
        kept_words = protection.kept_sets(present.map(lambda t: set(words(t))), FREE_TEXT_SHARES["words"],
                                          most_words).index[:MAX_KEPT_WORDS]
        between = protection.kept_sets(present.map(lambda t: set(WORD.sub("", t))), FREE_TEXT_SHARES["characters"],
                                       most_between).index
        # a kept word's letters, in any casing the texts may write it in
        kept_characters = {*between, *(c for w in kept_words for c in f"{w}{str(w).upper()}" if WORD.fullmatch(c))}
    else:
        held_words = present.map(words).explode().dropna()
        kept_words = protection.kept(held_words, unit, TEXT_SHARES["values"]).index[:MAX_KEPT_WORDS]
        held_characters = present.map(lambda text: sorted(set(text))).explode().dropna()
        kept_characters = protection.kept(held_characters, unit, TEXT_SHARES["characters"]).index
        quantiles = np.quantile(lengths.to_numpy(), np.linspace(0, 1, 21)).tolist() if len(lengths) else []
        max_length = _protected_length(lengths, unit, protection)
    return dict(words=[str(w) for w in kept_words], text_characters="".join(sorted(map(str, kept_characters))),
                text_lengths=quantiles, max_length=max_length)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray) -> list[float]:
    """Twenty-one quantiles (0 to 1) of `values` held `weights` times each (noisy counts: negatives as none)."""
    weights = np.clip(weights, 0.0, None)
    if not len(values) or weights.sum() <= 0:
        return []
    cumulative = np.cumsum(weights) / weights.sum()
    return [float(values[min(np.searchsorted(cumulative, q), len(values) - 1)]) for q in np.linspace(0, 1, 21)]


def _enough(protection: ColumnProtection) -> str:
    """How many hold a value that is shown, in words (for messages)."""
    if protection.budget is not None:
        return f"enough subjects to pass differential privacy's noise (privacy.rare_threshold {protection.threshold})"
    return f"{protection.threshold} rows (privacy.rare_threshold)"


def _all_text(non_null: pd.Series) -> bool:
    return pd.api.types.infer_dtype(non_null, skipna=True) == "string"


def _protected_length(lengths: pd.Series, unit: pd.Series | None, protection: ColumnProtection) -> int:
    """The length at least the rare threshold's rows (or keys) reach: longer values are cut to it (with DP: the
    longest length whose noisy count is kept)."""
    if protection.budget is not None:
        kept = protection.kept(lengths, None, TEXT_SHARES["length"])
        return int(kept.index.max()) if len(kept) else 0
    if unit is not None:
        lengths = lengths.groupby(unit[lengths.index]).max()
    ordered = np.sort(lengths.to_numpy())[::-1]
    return int(ordered[min(protection.threshold, len(ordered)) - 1]) if len(ordered) else 0


def character_matrix(text: pd.Series, length: int) -> np.ndarray:
    """One row per value, one column per position: the character's code point, 0 past the end."""
    fixed = text.to_numpy(dtype=object).astype(f"<U{max(length, 1)}")  # cuts longer values
    return fixed.view(np.uint32).reshape(len(text), max(length, 1))[:, :length]


def _kept_characters(values: pd.Series, unit: pd.Series | None, length: int, protection: ColumnProtection) -> list[str]:
    """Per position, the characters held by at least the rare threshold's rows (or keys), most frequent first;
    trailing positions that keep nothing are dropped. With DP each position is a query of its own."""
    present = values.dropna()
    points = character_matrix(present, length)
    kept = []
    for j in range(length):
        column = pd.Series(points[:, j], index=present.index)
        column = column[column > 0]
        held = protection.kept(column, unit, TEXT_SHARES["characters"] / max(length, 1))
        kept.append("".join(chr(int(c)) for c in held.index))
    while kept and not kept[-1]:
        kept.pop()
    return kept


def lat_long_parts(text: pd.Series) -> pd.DataFrame:
    """Latitude, longitude, separator and digits after the point of "lat, long" text; NaN where it does not
    parse. Arrow's regex engine does this for a million values in well under a second; pandas' takes many."""
    found = pc.extract_regex(_arrow_text(text), LAT_LONG_PATTERN)
    lat, separator, long = (pc.if_else(found.is_valid(), part, None) for part in found.flatten())
    return pd.DataFrame({
        "lat": _arrow_floats(lat), "long": _arrow_floats(long), "separator": separator.to_pandas(),
        "decimals": np.maximum(_fraction_digits(lat), _fraction_digits(long)),
    }, index=text.index)


def _arrow_text(text: pd.Series) -> pa.Array:
    try:
        return pa.array(text.to_numpy(dtype=object), type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all str (e.g. seed data): write them as text first
        return pa.array(text.astype(str).to_numpy(dtype=object), type=pa.string())


def _arrow_floats(numbers: pa.Array) -> np.ndarray:
    return pc.cast(numbers, pa.float64()).to_numpy(zero_copy_only=False)


def _fraction_digits(numbers: pa.Array) -> np.ndarray:
    dot = pc.find_substring(numbers, ".")
    digits = pc.if_else(pc.less(dot, 0), 0, pc.subtract(pc.subtract(pc.utf8_length(numbers), dot), 1))
    return pc.fill_null(digits, 0).to_numpy(zero_copy_only=False)


def lat_long_grid(lat: np.ndarray, long: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """Points as integers counting steps of 10**-decimals degrees from (-90, -180), kept inside the globe."""
    scale = 10**decimals
    lat_n = np.clip(np.rint((lat + 90) * scale).astype(np.int64), 0, 180 * scale - 1)
    long_n = np.clip(np.rint((long + 180) * scale).astype(np.int64), 0, 360 * scale - 1)
    return lat_n, long_n


def lat_long_cell(lat_n: np.ndarray, long_n: np.ndarray, decimals: int) -> np.ndarray:
    """The 1° cell of grid points, as one integer: row * 360 + column."""
    return lat_n // 10**decimals * 360 + long_n // 10**decimals


def _lat_long_stats(values: pd.Series, unit: pd.Series | None, protection: ColumnProtection) -> dict | None:
    """Stats of a column whose every value is a valid "lat, long" pair, else None."""
    present = values.dropna()
    if not _all_text(present) or not present.iloc[:1000].str.match(LAT_LONG_PATTERN).all():
        return None  # cheap refusal before parsing everything
    parts = lat_long_parts(present)
    valid = parts.lat.between(-90, 90) & parts.long.between(-180, 180)
    if not valid.all() or parts.decimals.max() == 0:  # integer pairs like "3,4" are not coordinates
        return None
    decimals = int(min(parts.decimals.max(), LAT_LONG_MAX_DECIMALS))
    grid = lat_long_grid(parts.lat.to_numpy(), parts.long.to_numpy(), decimals)
    cells = pd.Series(lat_long_cell(*grid, decimals), index=present.index)
    kept = protection.kept(cells, unit, LAT_LONG_SHARES["cells"])
    if kept.empty:
        return None
    return dict(lat_long_cells=[int(c) for c in kept.index], lat_long_separator=str(parts.separator.mode().iloc[0]),
                decimals=decimals)


def _why_not_lat_long(values: pd.Series, protection: ColumnProtection) -> str:
    present = values.dropna()
    parts = lat_long_parts(present)
    bad = parts.lat.isna() | ~parts.lat.between(-90, 90) | ~parts.long.between(-180, 180)
    if bad.any():
        return f"value {present[bad].iloc[0]!r} is not a 'latitude, longitude' pair within ±90, ±180"
    if parts.decimals.max() == 0:
        return "values are pairs of whole numbers, not coordinates"
    return f"every 1° cell is held by fewer than {_enough(protection)}, so no location could be shown"


# numbers -------------------------------------------------------------------------------------------

def _numeric_stats(values: pd.Series, unit: pd.Series | None, forced: str | None, where: tuple,
                   protection: ColumnProtection, rows: pd.Series) -> dict:
    """`values` (and `unit`) are what the queries see (with DP one value per subject); `rows`, every row, give the
    format facts: whether the numbers are whole, how many decimals."""
    values = values.astype(float)
    infinite = np.isinf(values)
    finite = values.where(~infinite)  # infinities are modelled apart, as values of their own
    numbers = finite.dropna()
    all_numbers = pd.to_numeric(rows, errors="coerce").astype(float)
    all_numbers = all_numbers[np.isfinite(all_numbers)]
    if numbers.empty or all_numbers.empty:
        raise SynthError("holds only infinite values", dataset=where[0], table=where[1], column=where[2],
                         hint="store them as text, or drop the column")
    grain = dict(is_integer=_is_integer(all_numbers), decimals=_decimals(all_numbers))
    if protection.budget is not None:
        return _private_numeric_stats(values, protection, forced, where, grain)
    out = dict(protection.value_range(numbers, unit), **grain,
               infinite_shares=_infinite_shares(values, unit, protection))
    # the values held often enough: a discrete number's values, or a continuous one's heaped values
    categories, shares, rare_share = _protected_categories(finite, unit, protection)
    distinct = numbers.nunique()
    auto = distinct < DISCRETE_AUTO_MAX_VALUES
    few = distinct <= DISCRETE_MAX_VALUES or rare_share <= 1 - DISCRETE_AUTO_MIN_KEPT_SHARE
    if forced == "discrete" or (forced != "continuous" and auto):
        if categories and (forced == "discrete" or few):  # with no kept value there is nothing to show
            return dict(out, discrete=True, categories=categories, category_shares=shares, rare_share=rare_share)
        if forced == "discrete":
            raise SynthError(f"every value is held by fewer than {_enough(protection)}, so none could be shown "
                             "as a value of its own", dataset=where[0], table=where[1], column=where[2],
                             hint="remove the override")
    return dict(out, **_heaped_values(finite, unit, out, protection, categories, shares))


def _heaped_values(values: pd.Series, unit: pd.Series | None, numeric: dict, protection: ColumnProtection,
                   categories: list, shares: list[float]) -> dict:
    """Values that many rows hold exactly (incomes of 3.0 and 3.5 among 3.1234; prices of 9.99): a backend
    that smears values across bins should keep these exact, or a reader (or a classifier) tells the
    synthetic rows apart by them. Also the quantiles of the rest."""
    kept = [(c, s) for c, s in zip(categories, shares) if s >= HEAPED_MIN_SHARE][:HEAPED_MAX_VALUES]
    if not kept:
        return {}
    out = dict(categories=[c for c, _ in kept], category_shares=[s for _, s in kept],
               rare_share=1.0 - sum(s for _, s in kept))
    rest = values.dropna()
    rest = rest[~rest.isin([c for c, _ in kept])]
    quantiles = protection.value_range(rest, unit)["quantiles"] if len(rest) else numeric["quantiles"]
    clipped = np.clip(quantiles, numeric["min"], numeric["max"])
    return dict(out, rest_quantiles=[float(q) for q in clipped])


def _infinite_shares(values: pd.Series, unit: pd.Series | None, protection: ColumnProtection) -> dict[str, float] | None:
    """Share of rows holding 'inf' and '-inf', for those held by enough rows (or keys); rarer ones are
    clipped to the protected range like any extreme value."""
    infinities = values[np.isinf(values)]
    if infinities.empty:
        return None
    signs = np.sign(infinities).map({1.0: "inf", -1.0: "-inf"})
    categories, shares, _ = _protected_categories(signs, unit, protection)
    return {c: share * len(infinities) / len(values) for c, share in zip(categories, shares)} or None


def _private_numeric_stats(values: pd.Series, protection: ColumnProtection, forced: str | None, where: tuple,
                           grain: dict) -> dict:
    """A number's stats from its noisy value tree (one value per subject): range, quantiles, nulls, infinities,
    and where the tree's bins are the values themselves (whole numbers, few of them), the values of a discrete
    number. No heaped values: their exact positions would cost a query of their own."""
    if not grain["is_integer"]:
        grain = dict(grain, decimals=_private_decimals(values, protection))
    step = 1.0 if grain["is_integer"] else 10.0 ** -grain["decimals"] if grain["decimals"] < MAX_DECIMALS else 0.0
    tree = protection.value_tree(values, step, share=1 - DECIMALS_SHARE)
    numbers = _tree_range(tree, where, protection, "values")
    n = max(len(values), 1)
    out = dict(numbers, **grain, null_share=tree.nulls / n, quantile_noise=tree.quantile_noise,
               infinite_shares={k: v / n for k, v in tree.infinities.items() if v > 0} or None)
    exact = tree.exact_values()
    discrete = exact is not None and len(exact) < DISCRETE_AUTO_MAX_VALUES and forced != "continuous"
    if forced == "discrete" and exact is None:  # the bins' middles stand for the values
        low, high, count = tree.bins()
        exact = pd.Series(count, index=np.round((low + high) / 2, 12)).groupby(level=0).sum()
        exact = exact.sort_values(ascending=False, kind="stable")
    if discrete or forced == "discrete":
        total = max(tree.present, 1.0)
        categories = [int(v) if grain["is_integer"] else float(v) for v in exact.index]
        return dict(out, discrete=True, categories=categories,
                    category_shares=[float(c) / total for c in exact.to_numpy()], rare_share=0.0,
                    min=float(min(exact.index)), max=float(max(exact.index)))
    return out


def _private_decimals(values: pd.Series, protection: ColumnProtection) -> int:
    """With DP, the decimals the values are written with, from noisy counts of the subjects' values by their
    decimals (a fixed domain: 0 to MAX_DECIMALS, or more): the fewest beyond which the counts do not stand out of
    their noise. The decimals every value is written with would let a few odd values make a column continuous
    (rwm5yr's years of schooling: halves, and 0.4% imputed means such as 11.44142), and DP's value tree then
    found no grid to count on; values with more decimals are rounded to the grid, as a model's output is."""
    decimals = value_decimals(values.to_numpy(dtype=float))
    exact = np.bincount(decimals[np.isfinite(decimals)].astype(np.int64), minlength=MAX_DECIMALS + 2).astype(float)
    noisy = protection.noisy_counts(exact, DECIMALS_SHARE)
    for digits in range(MAX_DECIMALS):
        beyond = noisy[digits + 1:]
        if beyond.sum() < DECIMALS_Z * protection.sigma(DECIMALS_SHARE) * math.sqrt(len(beyond)):
            return digits
    return MAX_DECIMALS


def _tree_range(tree: ValueTree, where: tuple, protection: ColumnProtection, what: str) -> dict:
    found = tree.range()
    if found is None:
        raise SynthError(f"no range of {what} is held by {_enough(protection)}", dataset=where[0], table=where[1],
                         column=where[2], hint="raise train.differential_privacy.value_protection_epsilon, or drop "
                                               "the column")
    return found


def _is_integer(numbers: pd.Series) -> bool:
    values = numbers.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def written_with(values: np.ndarray, digits: int) -> np.ndarray:
    """Which values are written with at most `digits` decimals, within a thousandth of the last digit (a
    billionth of the value for huge ones), so that float32 artefacts (3.9600000381 for 3.96) count as what they
    were read from: the one decimals rule of the stats, the schema check and the discriminator."""
    with np.errstate(invalid="ignore"):  # infinities and NaN are never written with decimals
        return np.abs(values - np.round(values, digits)) <= np.maximum(10.0 ** -(digits + 3), 1e-9 * np.abs(values))


def value_decimals(values: np.ndarray, most: int = MAX_DECIMALS) -> np.ndarray:
    """The decimals each finite value is written with (most + 1: more); NaN where there is no finite number."""
    out = np.full(len(values), float(most + 1))
    out[~np.isfinite(values)] = np.nan
    todo = np.flatnonzero(np.isfinite(values))
    for digits in range(most + 1):
        done = written_with(values[todo], digits)
        out[todo[done]] = digits
        todo = todo[~done]
    return out


def _decimals(numbers: pd.Series, most: int = MAX_DECIMALS) -> int:
    """The decimals a column is written with: the fewest that hold for every value (of the first 10,000)."""
    values = numbers.to_numpy(dtype=float)[:10_000]
    for digits in range(most + 1):
        if written_with(values, digits).all():
            return digits
    return most


# dates ---------------------------------------------------------------------------------------------

def _datetime_stats(values: pd.Series, unit: pd.Series | None, protection: ColumnProtection, where: tuple) -> dict:
    stamps = values.dropna().astype("datetime64[ns]")
    parts = _datetime_parts(stamps)
    if protection.budget is None:
        return dict(protection.value_range(stamps.astype("int64").astype(float), unit), datetime_parts=parts)
    # with DP, nanoseconds since 1970 in a value tree whose finest bins are the dates' resolution
    nanoseconds = pd.Series(np.nan, index=values.index)
    nanoseconds[values.notna()] = stamps.astype("int64").astype(float)
    tree = protection.value_tree(nanoseconds, DATE_RESOLUTION_NS[parts[-1]])
    return dict(_tree_range(tree, where, protection, "dates"), datetime_parts=parts,
                null_share=tree.nulls / max(len(values), 1))


def _datetime_parts(stamps: pd.Series) -> list[str]:
    """year, month, day, then hour, minute, second up to the last one that is not always 0."""
    times = stamps.to_numpy() - stamps.to_numpy().astype("datetime64[D]")
    seconds = times.astype("timedelta64[s]").astype(np.int64)
    if (seconds % 60).any():
        return list(DATETIME_PARTS)
    if (seconds % 3600).any():
        return list(DATETIME_PARTS[:5])
    if seconds.any():
        return list(DATETIME_PARTS[:4])
    return list(DATETIME_PARTS[:3])


# shared --------------------------------------------------------------------------------------------

def _protected_categories(values: pd.Series, unit: pd.Series | None, protection: ColumnProtection | None = None,
                          share: float = 1.0) -> tuple[list, list[float], float]:
    """Categories held by at least the rare threshold's distinct units, most frequent first, with their shares of
    the rows (with DP: of the subjects, from the noisy counts) and the share left to rare values."""
    protection = protection or Protection().column()
    non_null = values.dropna()
    kept = protection.kept(values, unit, share)
    total = max(len(non_null), 1)
    if protection.budget is None:
        counts = non_null.value_counts()
        counts = counts[counts.index.isin(kept.index)]
    else:  # one value per subject: shares of subjects, from the noisy counts
        counts = kept
        total = max(protection.present or total, float(counts.sum()), 1.0)
        # a gap the noise alone explains is no rare share: a boolean whose two values are kept keeps them whole
        noise = 3.0 * protection.noise_of_counts(len(counts), share)
        if total - counts.sum() <= noise:
            total = max(float(counts.sum()), 1.0)
    categories = [plain_value(v) for v in counts.index]
    shares = [float(c) / total for c in counts.to_numpy()]
    return categories, shares, float(max(0.0, 1.0 - counts.sum() / total))


def plain_value(value):
    """A numpy scalar as the Python value it holds (17, not np.int64(17)); anything else as it is."""
    return value.item() if hasattr(value, "item") else value
