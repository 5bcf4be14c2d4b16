"""Each column becomes integer tokens, and tokens become values again.

The encoding of each column is chosen here (`choose_encoding`), from the core's backend-neutral stats and
the column's `encoding:` in synth.yaml, if any (`COLUMN_ENCODINGS` says what each word means to the core).

A column becomes one or more sub-columns (its tokens), modelled one after the other. The first
sub-column starts with [null?] [inf?] [-inf?] [rare?]; then come the encoding's own tokens (infinities
only where the stats kept them: held by enough rows; rarer ones are clipped like any extreme value):
- categorical / numeric_discrete: one token per category kept by the stats stage. Rare text values
  share one `_RARE_` token; a rare number or a rare non-text value takes its nearest kept value.
- numeric_binned: one token per value many rows hold exactly (kept by the stats stage), then one per
  quantile bin of the other values; decoding gives the exact value, or draws uniformly inside the bin,
  rounds to the source's precision and clips to the protected min/max.
- numeric_digit: the value on the grid of its precision, less a round base, digit by digit; the first
  sub-column holds the leading digits (up to 200 tokens). Exact; decoding clips to the protected min/max.
- datetime: year, month, day [, hour, minute, second]; decoding clamps the day to the month's length
  and clips to the protected min/max.
- character: one sub-column per position: [end] + the characters kept at that position; a rare
  character becomes the most common one there.
- lat_long: the kept 1° cell, then one token per decimal digit of latitude and longitude together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from synth_assets.plugin_api import (
    DATETIME_PARTS,
    RARE_TOKEN,
    ColumnStats,
    SynthError,
    TableStats,
    character_matrix,
    lat_long_cell,
    lat_long_grid,
    lat_long_parts,
)

# the per-column `encoding:` words synth.yaml takes, and what each asks the core's stats to treat the column as
COLUMN_ENCODINGS = {
    "categorical": "categorical", "numeric": "numeric", "numeric_discrete": "discrete",
    "numeric_binned": "continuous", "numeric_digit": "continuous", "datetime": "datetime",
    "character": "code", "lat_long": "lat_long",
}
# numbers needing at most this many digits over their protected range, at their own precision, are
# encoded digit by digit: exact values, and heaping on round values (table 55.0, carat 1.00) kept, where
# uniform-in-bin smears it; wider ranges (incomes to the cent) get quantile bins, with the values many rows
# hold exactly as tokens of their own
DIGIT_AUTO_MAX_DIGITS = 5
DIGIT_MAX_DIGITS = 15  # float64 holds 15 significant digits exactly
NULL = "<null>"
RARE = "<rare>"
TEXT_DTYPES = ("object", "string", "str", "category")
SINGLE_TOKEN = ("categorical", "numeric_discrete", "numeric_binned")
# the leading digit sub-column takes as many digits as fit in this many tokens: a coarse position that
# still tells the deciles of skewed columns apart (diamond prices: hundreds, not thousands), then digits
DIGIT_LEADING_MAX_TOKENS = 200
# ... and at most one token per this many training rows (at least DIGIT_LEADING_MIN_TOKENS): a small table's numbers
# start with a coarse digit that each token holds enough rows of, so relations between numbers are learnt from
# neighbouring values. On NAFLD's 1,600 subjects, a token per age and per history length (65 and 150 of them) left
# 25 rows each, and age and length came out unrelated (Spearman 0.14 against 0.49 real; a tens digit: 0.40)
DIGIT_LEADING_ROWS_PER_TOKEN = 50
DIGIT_LEADING_MIN_TOKENS = 20
DATETIME_SIZES = {"year": None, "month": 12, "day": 31, "hour": 24, "minute": 60, "second": 60}
DATETIME_UNITS = {"day": "D", "hour": "h", "minute": "m", "second": "s"}
NEAREST_CHUNK = 4_000_000  # distances computed at once when moving points to their nearest kept cell


class ColumnCode(BaseModel):
    column: str
    encoding: str
    has_null: bool
    has_rare: bool
    infinities: list[str] = []  # 'inf', '-inf': numbers with a token of their own
    values: list | None = None  # categories, for categorical and numeric_discrete
    edges: list[float] | None = None  # bin edges, for numeric_binned
    exact: list[float] | None = None  # numeric_binned: values with a token of their own, before the bins
    decimals: int | None = None  # numeric_digit and lat_long: digits after the point
    digit_base: int | None = None  # numeric_digit: value * 10**decimals - base is written in digits
    digit_top: int | None = None  # numeric_digit: power of ten of the leading sub-column
    digit_top_size: int | None = None  # numeric_digit: tokens of the leading sub-column
    datetime_parts: list[str] | None = None
    first_year: int | None = None
    last_year: int | None = None
    characters: list[str] | None = None  # character: per position, the characters kept
    cells: list[int] | None = None  # lat_long: the 1° cells kept

    @property
    def offset(self) -> int:
        return int(self.has_null) + len(self.infinities) + int(self.has_rare)

    @property
    def rare_token(self) -> int | None:
        return self.offset - 1 if self.has_rare else None

    @property
    def parts(self) -> list[tuple[str, int]]:
        """(part name, tokens of the encoding's own) for each sub-column, before null/rare tokens."""
        if self.encoding in ("categorical", "numeric_discrete"):
            return [("", len(self.values))]
        if self.encoding == "numeric_binned":
            return [("", len(self.exact or []) + len(self.edges) - 1)]
        if self.encoding == "numeric_digit":
            lower = [(f"1e{p - self.decimals}", 10) for p in range(self.digit_top - 1, -1, -1)]
            return [(f"1e{self.digit_top - self.decimals}", self.digit_top_size)] + lower
        if self.encoding == "datetime":
            sizes = dict(DATETIME_SIZES, year=self.last_year - self.first_year + 1)
            return [(part, sizes[part]) for part in self.datetime_parts]
        if self.encoding == "character":
            return [(f"c{j}", 1 + len(kept)) for j, kept in enumerate(self.characters)]
        if self.encoding == "lat_long":
            return [("cell", len(self.cells))] + [(f"d{k}", 100) for k in range(1, self.decimals + 1)]
        raise ValueError(f"column '{self.column}': unknown encoding {self.encoding!r}")

    @property
    def sub_columns(self) -> list[tuple[str, int]]:
        """(name, cardinality) of each token this column becomes, in the order they are modelled.

        Multi-token encodings carry the null/rare tokens in their first sub-column."""
        named = [(self.column if self.encoding in SINGLE_TOKEN else f"{self.column}__{part}", size)
                 for part, size in self.parts]
        (first, size), rest = named[0], named[1:]
        return [(first, self.offset + size)] + rest


def choose_encoding(stats: ColumnStats, where: tuple = (None, None)) -> str:
    """The encoding of one column, from its stats (and the word synth.yaml asked for, which the stats carry)."""
    if stats.kind == "datetime":
        return "datetime"
    if stats.kind == "categorical":
        return {"code": "character", "lat_long": "lat_long"}.get(stats.text_form, "categorical")
    if stats.discrete:
        return "numeric_discrete"
    digits = digit_count(stats.min, stats.max, stats.decimals)
    encoding = stats.requested_encoding if stats.requested_encoding in ("numeric_binned", "numeric_digit") else (
        "numeric_digit" if digits <= DIGIT_AUTO_MAX_DIGITS else "numeric_binned")
    if encoding == "numeric_digit" and digits > DIGIT_MAX_DIGITS:
        raise SynthError(f"values need {digits} digits at {stats.decimals} decimals; the digit encoding holds at "
                         f"most {DIGIT_MAX_DIGITS}", dataset=where[0], table=where[1], column=stats.name,
                         hint="use numeric_binned, or remove the override")
    return encoding


def digit_count(low: float, high: float, decimals: int) -> int:
    """Digits needed to write the width of [low, high] on the grid of the column's precision."""
    return len(str(max(round((high - low) * 10**decimals), 0)))


def build_codes(table: TableStats, dataset: str | None = None) -> list[ColumnCode]:
    return [build_code(table.columns[c], (dataset, table.name), rows=table.rows)
            for c in table.column_order if c in table.columns]


def build_code(stats: ColumnStats, where: tuple = (None, None), rows: int | None = None) -> ColumnCode:
    """One column's code; `rows`: the training rows of its table, which bound a number's leading digit."""
    encoding = choose_encoding(stats, where)
    common = dict(column=stats.name, encoding=encoding, has_null=stats.null_share > 0, has_rare=False,
                  infinities=list(stats.infinite_shares or {}))
    if encoding in ("categorical", "numeric_discrete"):
        is_text = stats.dtype.split("[")[0] in TEXT_DTYPES
        values = list(stats.categories or [])
        has_rare = is_text and (stats.rare_share > 0 or not values)
        return ColumnCode(**dict(common, has_rare=has_rare), values=values)
    if encoding == "numeric_binned":
        edges = np.unique(np.asarray(stats.rest_quantiles or stats.quantiles, dtype=float))
        if len(edges) < 2:
            edges = np.array([edges[0], edges[0]])
        return ColumnCode(**common, edges=[float(e) for e in edges], exact=[float(v) for v in stats.categories or []])
    if encoding == "numeric_digit":
        return ColumnCode(**common, **_digit_layout(stats, leading_tokens(rows)))
    if encoding == "datetime":
        low, high = _protected_stamps(stats)
        return ColumnCode(**common, datetime_parts=stats.datetime_parts or list(DATETIME_PARTS[:3]),
                          first_year=_year(low), last_year=_year(high))
    if encoding == "character":
        return ColumnCode(**common, characters=list(stats.characters or []) or [""])
    return ColumnCode(**common, cells=list(stats.lat_long_cells), decimals=stats.decimals)  # lat_long


# columns -------------------------------------------------------------------------------------------

def encode_column(series: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    """Tokens of one column: shape (n,) for one sub-column, (n, k) for k sub-columns."""
    is_null = series.isna().to_numpy()
    infinity = np.full(len(series), -1)  # which kept infinity a value is, if any
    if code.infinities:
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        for k, name in enumerate(code.infinities):
            infinity[numbers == float(name)] = k
    present = ~is_null & (infinity < 0)
    tokens = np.zeros((len(series), len(code.parts)), dtype=np.int64)
    body = ENCODERS[code.encoding](series[present], code, stats)
    tokens[present] = body.reshape(-1, tokens.shape[1])
    tokens[present, 0] += code.offset
    tokens[infinity >= 0, 0] = int(code.has_null) + infinity[infinity >= 0]
    if is_null.any():
        # a null where training saw none (validation data) takes the first value token
        tokens[is_null, 0] = 0 if code.has_null else code.offset
    return tokens[:, 0] if tokens.shape[1] == 1 else tokens


def decode_column(tokens: np.ndarray, code: ColumnCode, stats: ColumnStats, rng: np.random.Generator) -> pd.Series:
    """Values of one column from its tokens, shape (n,) or (n, k)."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(len(tokens), -1)
    first = tokens[:, 0]
    is_null = code.has_null & (first == 0)
    is_rare = code.has_rare & (first == code.rare_token)
    infinity = first - int(code.has_null)
    is_infinite = (infinity >= 0) & (infinity < len(code.infinities))
    body = tokens.copy()
    body[:, 0] = np.clip(first - code.offset, 0, None)
    sizes = np.asarray([size for _, size in code.parts])
    body = np.clip(body, 0, np.maximum(sizes - 1, 0))  # a token no value has (e.g. null where none) stays in range
    out = DECODERS[code.encoding](body, code, stats, rng)
    if is_rare.any():
        out[is_rare] = RARE_TOKEN
    if is_infinite.any():
        out = out.astype(float)
        out[is_infinite] = np.asarray(code.infinities, dtype=float)[infinity[is_infinite]]
    if is_null.any():
        out = _with_nulls(out, is_null)
    return out


def _with_nulls(values: pd.Series, is_null: np.ndarray) -> pd.Series:
    """`values` with nulls where `is_null`: NaN in floats, None in objects (integers and booleans become
    objects), NaT in dates. Through numpy where it can: a masked pandas assignment costs a millisecond."""
    kind = values.dtype.kind
    if kind in "fiubO":
        out = values.to_numpy(dtype=float if kind == "f" else object, copy=True)
        out[is_null] = np.nan if kind == "f" else None
        return pd.Series(out, dtype=float if kind == "f" else object)
    values = values.copy()
    values[is_null] = None
    return values


# categorical and numeric_discrete --------------------------------------------------------------------

def _encode_categories(values: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    if not code.values:
        return np.full(len(values), -1 if code.has_rare else 0, dtype=np.int64)
    if code.encoding == "numeric_discrete":
        kept = np.asarray(code.values, dtype=float)
        order = np.argsort(kept)
        numbers = values.to_numpy(dtype=float)
        pos = np.clip(np.searchsorted(kept[order], numbers), 0, len(kept) - 1)
        left = np.clip(pos - 1, 0, len(kept) - 1)
        nearer_left = np.abs(numbers - kept[order][left]) < np.abs(numbers - kept[order][pos])
        return order[np.where(nearer_left, left, pos)]
    is_text = code.has_rare or stats.dtype.split("[")[0] in TEXT_DTYPES
    lookup = {(str(v) if is_text else v): i for i, v in enumerate(code.values)}
    # what Series.map(lookup) does inside, without building a Series of the lookup per call (a child's record
    # steps encode a few hundred values at a time, and the Series cost more than the lookup)
    found = pd.Index(list(lookup)).get_indexer(values.astype(str) if is_text else values)
    fallback = -1 if code.has_rare else 0  # rare text -> the rare token; anything else -> most frequent
    return np.where(found >= 0, np.fromiter(lookup.values(), dtype=np.int64, count=len(lookup))[found], fallback)


def _decode_categories(body: np.ndarray, code: ColumnCode, stats: ColumnStats, rng) -> pd.Series:
    if not code.values:
        return pd.Series([RARE_TOKEN] * len(body), dtype=object)
    out = pd.Series(np.asarray(code.values, dtype=object)[body[:, 0]], dtype=object)
    return pd.to_numeric(out) if code.encoding == "numeric_discrete" else out


# numeric_binned ------------------------------------------------------------------------------------

def _encode_binned(values: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    numbers = values.to_numpy(dtype=float)
    inner = np.asarray(code.edges[1:-1])
    exact = np.asarray(code.exact or [], dtype=float)
    tokens = len(exact) + np.searchsorted(inner, np.clip(numbers, code.edges[0], code.edges[-1]), side="right")
    if len(exact):
        order = np.argsort(exact)
        pos = np.clip(np.searchsorted(exact[order], numbers), 0, len(exact) - 1)
        hit = exact[order][pos] == numbers
        tokens[hit] = order[pos[hit]]
    return tokens


def _decode_binned(body: np.ndarray, code: ColumnCode, stats: ColumnStats, rng) -> pd.Series:
    edges = np.asarray(code.edges)
    n_exact = len(code.exact or [])
    bins = np.maximum(body[:, 0] - n_exact, 0)
    low, high = edges[bins], edges[np.minimum(bins + 1, len(edges) - 1)]
    numbers = _to_precision(np.clip(low + (high - low) * rng.random(len(bins)), stats.min, stats.max), stats)
    if n_exact:
        is_exact = body[:, 0] < n_exact
        numbers[is_exact] = np.asarray(code.exact, dtype=float)[body[is_exact, 0]]
    return pd.Series(numbers)


def _to_precision(numbers: np.ndarray, stats: ColumnStats) -> np.ndarray:
    """Rounded to the source's precision, and still within the protected range: a range bound with more digits
    than the rounding keeps (-0.16691277060617613 rounded to 8 decimals) would otherwise round outside it. The
    bounds themselves are rounded inwards, so a clipped value stays on the grid; where no grid value lies
    within the range, the bounds are kept as they are."""
    decimals = 0 if stats.is_integer else stats.decimals
    if decimals is None:
        return numbers
    scale = 10.0**decimals
    low, high = np.ceil(stats.min * scale - 1e-6) / scale, np.floor(stats.max * scale + 1e-6) / scale
    if low > high:
        low, high = stats.min, stats.max
    return np.clip(np.round(numbers, decimals), low, high)


# numeric_digit -------------------------------------------------------------------------------------

def leading_tokens(rows: int | None) -> int:
    """The most tokens a number's leading digit gets in a table of `rows` training rows."""
    if rows is None:
        return DIGIT_LEADING_MAX_TOKENS
    return int(min(DIGIT_LEADING_MAX_TOKENS, max(DIGIT_LEADING_MIN_TOKENS, rows // DIGIT_LEADING_ROWS_PER_TOKEN)))


def _digit_layout(stats: ColumnStats, most: int = DIGIT_LEADING_MAX_TOKENS) -> dict:
    """Values become n = round(value * 10**decimals) - base, written digit by digit. The base is the
    protected min rounded down to a multiple of the leading position, so no sign is needed and every
    lower digit is the value's own (round numbers stay round)."""
    decimals = stats.decimals or 0
    low, high = round(stats.min * 10**decimals), round(stats.max * 10**decimals)
    top = 0
    while _leading_tokens(low, high, top) > most:
        top += 1
    base = low // 10**top * 10**top
    return dict(decimals=decimals, digit_base=base, digit_top=top, digit_top_size=_leading_tokens(low, high, top))


def _leading_tokens(low: int, high: int, top: int) -> int:
    """Tokens of the leading sub-column when it holds the digits from 10**top up."""
    return high // 10**top - low // 10**top + 1


def _encode_digits(values: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    numbers = np.clip(values.to_numpy(dtype=float), stats.min, stats.max)
    n = np.rint(numbers * 10.0**code.decimals).astype(np.int64) - code.digit_base
    n = np.clip(n, 0, code.digit_top_size * 10**code.digit_top - 1)
    powers = 10 ** np.arange(code.digit_top, -1, -1, dtype=np.int64)
    digits = n[:, None] // powers[None, :]
    digits[:, 1:] %= 10
    return digits


def _decode_digits(body: np.ndarray, code: ColumnCode, stats: ColumnStats, rng) -> pd.Series:
    powers = 10 ** np.arange(code.digit_top, -1, -1, dtype=np.int64)
    n = body @ powers + code.digit_base
    numbers = np.clip(n / 10.0**code.decimals, stats.min, stats.max)
    return pd.Series(_to_precision(numbers, stats))


# datetime ------------------------------------------------------------------------------------------

def _protected_stamps(stats: ColumnStats) -> tuple[np.datetime64, np.datetime64]:
    """The protected min and max, rounded to the finest part kept (stats hold them as float nanoseconds)."""
    unit = DATETIME_UNITS[(stats.datetime_parts or ["day"])[-1]]
    half = np.timedelta64(1, unit).astype("timedelta64[ns]") // 2
    low, high = (np.datetime64(int(round(v)), "ns") + half for v in (stats.min, stats.max))
    return low.astype(f"datetime64[{unit}]"), high.astype(f"datetime64[{unit}]")


def _year(stamp: np.datetime64) -> int:
    return int(stamp.astype("datetime64[Y]").astype(np.int64)) + 1970


def _as_stamps(values: pd.Series, stats: ColumnStats, fallback: np.datetime64) -> np.ndarray:
    stamps = pd.to_datetime(values, errors="coerce", format="ISO8601" if stats.datetime_format else None)
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.fillna(fallback).to_numpy(dtype="datetime64[ns]")  # text that is no date (not in training)


def split_datetime(stamps: np.ndarray) -> np.ndarray:
    """Columns year, month, day, hour, minute, second of datetime64 values."""
    years, months, days = (stamps.astype(f"datetime64[{u}]") for u in "YMD")
    seconds = (stamps - days).astype("timedelta64[s]").astype(np.int64)
    return np.column_stack([
        years.astype(np.int64) + 1970,
        (months - years.astype("datetime64[M]")).astype(np.int64) + 1,
        (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
        seconds // 3600, seconds // 60 % 60, seconds % 60,
    ])


def _encode_datetime(values: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    low, high = _protected_stamps(stats)
    low, high = low.astype("datetime64[ns]"), high.astype("datetime64[ns]")
    stamps = np.clip(_as_stamps(values, stats, low), low, high)
    parts = split_datetime(stamps)[:, : len(code.datetime_parts)]
    parts[:, 0] -= code.first_year
    parts[:, 1:3] -= 1  # months and days count from 1
    return parts


def _decode_datetime(body: np.ndarray, code: ColumnCode, stats: ColumnStats, rng) -> pd.Series:
    months = ((body[:, 0] + code.first_year - 1970) * 12 + body[:, 1]).astype("datetime64[M]")
    first_day = months.astype("datetime64[D]")
    month_length = ((months + 1).astype("datetime64[D]") - first_day).astype(np.int64)
    days = np.minimum(body[:, 2], month_length - 1)  # 31 February becomes 28 or 29 February
    seconds = np.zeros(len(body), dtype=np.int64)
    for j, size in zip(range(3, body.shape[1]), (3600, 60, 1)):
        seconds += body[:, j] * size
    stamps = first_day.astype("datetime64[ns]") + days.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")
    low, high = _protected_stamps(stats)
    stamps = np.clip(stamps, low.astype("datetime64[ns]"), high.astype("datetime64[ns]"))
    if stats.datetime_format:
        return pd.Series(_format_stamps(stamps, stats.datetime_format), dtype=object)
    return pd.Series(stamps)


def _format_stamps(stamps: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "%Y-%m-%d":  # numpy writes ISO dates in C, much faster than strftime
        return np.datetime_as_string(stamps, unit="D").astype(object)
    if fmt == "%Y-%m-%d %H:%M:%S":
        return pd.Series(np.datetime_as_string(stamps, unit="s")).str.replace("T", " ", regex=False).to_numpy()
    return pd.DatetimeIndex(stamps).strftime(fmt).to_numpy(dtype=object)


# character -----------------------------------------------------------------------------------------

def _encode_characters(values: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    points = character_matrix(values, len(code.characters))
    tokens = np.zeros(points.shape, dtype=np.int64)
    for j, kept in enumerate(code.characters):
        tokens[:, j] = _character_tokens(points[:, j], kept)
    return tokens


def _character_tokens(points: np.ndarray, kept: str) -> np.ndarray:
    """0 past the end; 1 + index of a kept character; a rare character becomes the most common (1),
    or is dropped (0) where no character is common at this position."""
    if not kept:
        return np.zeros(len(points), dtype=np.int64)
    vocabulary = np.array([ord(c) for c in kept], dtype=np.uint32)
    order = np.argsort(vocabulary)
    pos = np.clip(np.searchsorted(vocabulary[order], points), 0, len(kept) - 1)
    found = vocabulary[order][pos] == points
    return np.where(found, order[pos] + 1, np.where(points == 0, 0, 1))


def _decode_characters(body: np.ndarray, code: ColumnCode, stats: ColumnStats, rng) -> pd.Series:
    length = len(code.characters)
    points = np.zeros((len(body), length), dtype=np.uint32)
    for j, kept in enumerate(code.characters):
        table = np.array([0] + [ord(c) for c in kept], dtype=np.uint32)
        points[:, j] = table[body[:, j]]
    # an ended position followed by characters is a dropped character: close the gap
    order = np.argsort(points == 0, axis=1, kind="stable")
    points = np.ascontiguousarray(np.take_along_axis(points, order, axis=1))
    text = points.view(f"<U{length}").ravel()  # numpy strips the trailing zeros
    return pd.Series(text.astype(object), dtype=object)


# lat_long ------------------------------------------------------------------------------------------
# Coarse + fine grid rather than two digit-encoded numbers: the first token is the 1° cell, so where a
# point lies (latitude and longitude together) is one decision, clusters such as cities are learned as
# such, and cells held by too few rows are protected like rare categories. Each further token is one
# decimal digit of both coordinates (10 x 10 sub-cells), refining the point down to the source's precision.

def _encode_lat_long(values: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    parts = lat_long_parts(values)
    cells = np.asarray(code.cells, dtype=np.int64)
    fallback = cells[0] // 360 - 90, cells[0] % 360 - 180  # unparsable text (not in training) -> a kept cell
    lat = parts.lat.fillna(fallback[0]).to_numpy(dtype=float)
    long = parts.long.fillna(fallback[1]).to_numpy(dtype=float)
    lat_n, long_n = lat_long_grid(lat, long, code.decimals)
    tokens = np.zeros((len(values), 1 + code.decimals), dtype=np.int64)
    tokens[:, 0] = _nearest_kept_cell(lat_long_cell(lat_n, long_n, code.decimals), cells)
    for k in range(1, code.decimals + 1):
        power = 10 ** (code.decimals - k)
        tokens[:, k] = (lat_n // power % 10) * 10 + long_n // power % 10
    return tokens


def _nearest_kept_cell(cell: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Index of each cell among the kept ones; a rare cell takes the nearest kept cell."""
    order = np.argsort(kept)
    pos = np.clip(np.searchsorted(kept[order], cell), 0, len(kept) - 1)
    index = order[pos]
    rare = np.flatnonzero(kept[index] != cell)
    chunk = max(1, NEAREST_CHUNK // len(kept))
    for start in range(0, len(rare), chunk):
        rows = rare[start : start + chunk]
        d_lat = cell[rows, None] // 360 - kept[None, :] // 360
        d_long = cell[rows, None] % 360 - kept[None, :] % 360
        index[rows] = np.argmin(d_lat**2 + d_long**2, axis=1)
    return index


def _decode_lat_long(body: np.ndarray, code: ColumnCode, stats: ColumnStats, rng) -> pd.Series:
    scale = 10**code.decimals
    cell = np.asarray(code.cells, dtype=np.int64)[body[:, 0]]
    lat_n, long_n = cell // 360 * scale, cell % 360 * scale
    for k in range(1, code.decimals + 1):
        power = 10 ** (code.decimals - k)
        lat_n += body[:, k] // 10 * power
        long_n += body[:, k] % 10 * power
    lat = np.clip(lat_n - 90 * scale, -90 * scale, 90 * scale)
    long = np.clip(long_n - 180 * scale, -180 * scale, 180 * scale)
    separator = stats.lat_long_separator or ", "
    text = pc.binary_join_element_wise(_fixed_point(lat, code.decimals), _fixed_point(long, code.decimals), separator)
    return pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)


def _fixed_point(scaled: np.ndarray, decimals: int) -> pa.Array:
    """Integers holding value * 10**decimals, as text with exactly `decimals` digits after the point
    (built with Arrow's string kernels: a million values in a fraction of a second)."""
    whole, fraction = np.divmod(np.abs(scaled), 10**decimals)
    sign = pa.array(np.where(scaled < 0, "-", ""))
    text = pc.binary_join_element_wise(sign, pc.cast(pa.array(whole), pa.string()), "")
    if decimals:
        digits = pc.utf8_lpad(pc.cast(pa.array(fraction), pa.string()), width=decimals, padding="0")
        text = pc.binary_join_element_wise(text, digits, ".")
    return text


ENCODERS = {
    "categorical": _encode_categories,
    "numeric_discrete": _encode_categories,
    "numeric_binned": _encode_binned,
    "numeric_digit": _encode_digits,
    "datetime": _encode_datetime,
    "character": _encode_characters,
    "lat_long": _encode_lat_long,
}
DECODERS = {
    "categorical": _decode_categories,
    "numeric_discrete": _decode_categories,
    "numeric_binned": _decode_binned,
    "numeric_digit": _decode_digits,
    "datetime": _decode_datetime,
    "character": _decode_characters,
    "lat_long": _decode_lat_long,
}


# tables --------------------------------------------------------------------------------------------

def sub_column_groups(codes: list[ColumnCode]) -> list[list[int]]:
    """For each column, the indices of its sub-columns in the flat token matrix."""
    groups, start = [], 0
    for code in codes:
        width = len(code.sub_columns)
        groups.append(list(range(start, start + width)))
        start += width
    return groups


def cardinalities(codes: list[ColumnCode]) -> list[int]:
    return [k for code in codes for _, k in code.sub_columns]


def encode_table(df: pd.DataFrame, codes: list[ColumnCode], table: TableStats) -> pd.DataFrame:
    """One narrow integer column per sub-column, named `<column>` or `<column>__<part>`."""
    narrow = {}
    for code in codes:
        tokens = encode_column(df[code.column], code, table.columns[code.column])
        tokens = tokens.reshape(len(df), -1)
        for j, (name, k) in enumerate(code.sub_columns):
            dtype = np.uint8 if k <= 255 else np.uint16 if k <= 65535 else np.int32
            narrow[name] = tokens[:, j].astype(dtype)
    return pd.DataFrame(narrow)


def decode_table(tokens: np.ndarray, codes: list[ColumnCode], table: TableStats, rng: np.random.Generator,
                 columns: list[str] | None = None) -> pd.DataFrame:
    """The columns of drawn tokens as values: all, or those named in `columns` (a child's record step gives more
    columns than it draws, and seed values go out as they are)."""
    out = {}
    wanted = None if columns is None else set(columns)
    for code, group in zip(codes, sub_column_groups(codes)):
        if wanted is not None and code.column not in wanted:
            continue
        part = tokens[:, group]
        out[code.column] = decode_column(part[:, 0] if len(group) == 1 else part, code, table.columns[code.column], rng)
    return pd.DataFrame(out)
