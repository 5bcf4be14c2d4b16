"""One column's values as JSON, and the rule an output value must obey, both from the stats alone.

The stats already obey the privacy rules: a category not listed becomes `RARE_TOKEN`, numbers are clipped to
the protected range, dates too, code text keeps per position only the characters enough units hold, and free
text only the words and characters enough units hold, up to the protected length. So the values a sample
holds, and the values a schema admits, never reveal what rare-value protection hides.

Free text is a free string in the schema, of the column's kept words (lower, capitalised or upper case) with
its kept other characters between them: the grammar cannot spell a rare name. A text longer than the protected
length is cut to it when read back (a grammar that counts characters cannot also hold a word list).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from synth_assets.plugin_api import RARE_TOKEN, WORD, ColumnStats, SynthError, TextFilter, cut_at_word

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MONTH_DAY = r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
TIME = r" (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
MAX_FLOAT_DECIMALS = 6  # a continuous number with no grain in its source is written with this many


@dataclass(frozen=True)
class ColumnRule:
    """The JSON Schema of a column's output values and the check that enforces it (schema and check agree)."""

    schema: dict
    check: Callable[[Any], Any]  # returns the value, or raises ValueError saying why it is not allowed


def _python(value):
    return value.item() if isinstance(value, np.generic) else value


def canonical(value):
    """A value as JSON Schema engines write it: 1.0 as 1. xgrammar writes an enum's 1.0 as `1`, so a sample
    holding `1.0` would teach the model a spelling the grammar then forbids."""
    value = _python(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(value):
    """Equality as JSON sees it: True is not 1."""
    return (type(value) is bool, value)


def _has_time(col: ColumnStats) -> bool:
    return any(part in (col.datetime_parts or []) for part in ("hour", "minute", "second"))


def _is_free_text(col: ColumnStats) -> bool:
    return col.text_form == "text"


def _is_categorical_number(col: ColumnStats) -> bool:
    return col.kind == "numeric" and col.discrete and bool(col.categories)


def check_supported(col: ColumnStats, table: str) -> None:
    if col.text_form == "lat_long":
        raise SynthError("backend 'llm' does not model lat/long text", table=table, column=col.name,
                         hint="set `encoding: categorical` on this column, or use backend tabular_argn")


# values as JSON ----------------------------------------------------------------------------------------

def json_values(series: pd.Series, col: ColumnStats) -> list:
    """The column's values as JSON-ready Python values, protected as the stats say; None for nulls."""
    present = series.notna()
    if _is_free_text(col):
        out = _sample_texts(series, col)
    elif col.kind == "categorical" and col.text_form == "code":
        out = [_code_value(str(v), col.characters or []) for v in series.astype(object)]
    elif col.kind == "categorical":
        kept = {_key(c): canonical(c) for c in col.categories or []}
        out = [kept.get(_key(_python(v)), RARE_TOKEN) for v in series.astype(object)]
    elif _is_categorical_number(col):
        kept = np.asarray(col.categories, dtype=float)
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        nearest = np.abs(numbers[:, None] - kept[None, :]).argmin(axis=1) if len(numbers) else np.array([], int)
        out = [canonical(col.categories[i]) for i in nearest]
    elif col.kind == "numeric":
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        numbers = np.clip(numbers, col.min, col.max)
        if col.is_integer:
            out = [int(v) if np.isfinite(v) else None for v in np.round(numbers)]
        else:
            digits = min(col.decimals if col.decimals is not None else MAX_FLOAT_DECIMALS, MAX_FLOAT_DECIMALS)
            out = [float(round(v, digits)) if np.isfinite(v) else None for v in numbers]
    else:
        stamps = pd.to_datetime(series, errors="coerce", format="ISO8601" if col.datetime_format else None)
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        low, high = date_bounds(col)
        stamps = stamps.clip(low, high)
        text = stamps.dt.strftime(DATETIME_FORMAT if _has_time(col) else DATE_FORMAT)
        out = list(text.astype(object))
    return [v if ok and v is not None and v == v else None for v, ok in zip(out, present)]


def text_characters(col: ColumnStats) -> str:
    """The characters a free-text column's JSON strings hold: those the stats kept, but for what JSON writes
    escaped (quotes, backslashes, control characters: line breaks and tabs become spaces in the samples)."""
    return "".join(c for c in col.text_characters or "" if c not in '"\\' and ord(c) >= 0x20)


def _sample_text(text: str, col: ColumnStats) -> str:
    """A training text as a sample holds it: without the words and characters the stats did not keep (a rare
    name is never in a sample, so the model cannot learn to spell it), white space as single spaces, and each
    word in a casing the grammar writes ("McDonald" as "Mcdonald")."""
    kept = set(text_characters(col))
    text = "".join(c if c in kept else " " if c.isspace() else "" for c in text)
    return WORD.sub(lambda m: _usual_casing(m.group(0)), TextFilter.of(col).scrub(text))


def _usual_casing(word: str) -> str:
    return word if word in (word.lower(), word.capitalize(), word.upper()) else word.capitalize()


def _code_value(text: str, characters: list[str]) -> str:
    """A rare character becomes its position's most common one; text stops where no character is kept."""
    out = []
    for i, ch in enumerate(text[: len(characters)]):
        if ch in characters[i]:
            out.append(ch)
        elif characters[i]:
            out.append(characters[i][0])
        else:
            break
    return "".join(out)


def date_bounds(col: ColumnStats) -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(int(round(col.min)), unit="ns"), pd.Timestamp(int(round(col.max)), unit="ns")


def from_json(values: list, col: ColumnStats) -> pd.Series:
    """Output values back as a column; the core casts it to the source dtype."""
    if col.kind == "datetime":
        stamps = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce").clip(*date_bounds(col))
        if col.datetime_format:
            return stamps.dt.strftime(col.datetime_format).astype(object).where(stamps.notna(), None)
        return stamps
    if col.kind == "numeric":
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        if col.is_integer:
            return numbers.round()
        if _is_categorical_number(col):
            # a kept value as the stats hold it: rounded to the grain, 11.8182401657104 (an imputed mean) would
            # be a value the source never holds, and the audit refuses the table
            return numbers
        # the source's grain: a model may write more digits than it learned
        digits = col.decimals if col.decimals is not None else MAX_FLOAT_DECIMALS
        return numbers.round(min(digits, MAX_FLOAT_DECIMALS))
    if _is_free_text(col):  # cut to the protected length, without white space around; an empty text is no text
        cut = [cut_at_word(v, col.max_length or 0).strip() if isinstance(v, str) else v for v in values]
        return pd.Series([v if v != "" else None for v in cut], dtype=object)
    return pd.Series(values, dtype=object)


# what an output value may be -------------------------------------------------------------------------

TEXT_DTYPES = ("object", "string", "str", "category")  # the dtypes that can hold RARE_TOKEN


def column_rule(col: ColumnStats, *, impute_na: bool = False, impute_protected: bool = False,
                mask: list | tuple = ()) -> ColumnRule:
    masked = {_key(_python(v)) for v in mask}
    nullable = col.null_share > 0 and not impute_na
    if _is_free_text(col):
        if mask:
            raise SynthError("free text has no values to mask", table=None, column=col.name,
                             hint="remove the column's mask directive")
        base = {"type": "string", "pattern": text_pattern(col)}
        text_filter = TextFilter.of(col)
        between = set(text_characters(col))

        def check_value(v):
            if not isinstance(v, str) or text_filter.unknown_words(v) or not set(WORD.sub("", v)) <= between:
                raise ValueError(f"{v!r} is not a text of kept words and characters")
            return v
    elif col.kind == "categorical" and col.text_form == "code":
        pattern = _code_pattern(col.characters or [])
        base = {"type": "string", "pattern": pattern}
        compiled = re.compile(pattern)

        def check_value(v):
            if not isinstance(v, str) or not compiled.fullmatch(v):
                raise ValueError(f"{v!r} is not a kept code")
            return v
    elif col.kind == "categorical" or _is_categorical_number(col):
        allowed = [canonical(c) for c in col.categories or [] if _key(c) not in masked]
        # only text can hold the rare token: a boolean's withheld values come out as its kept ones
        text = col.dtype.split("[")[0] in TEXT_DTYPES
        if col.kind == "categorical" and text and col.rare_share > 0 and not impute_protected \
                and _key(RARE_TOKEN) not in masked:
            allowed.append(RARE_TOKEN)
        if not allowed and not nullable:
            raise SynthError("the directives leave no value to generate", table=None, column=col.name,
                             hint="mask fewer values, or allow nulls")
        base = {"enum": allowed}
        keys = {_key(c) for c in allowed}

        def check_value(v):
            if _key(v) not in keys:
                raise ValueError(f"{v!r} is not one of the allowed values")
            return v
    elif col.kind == "numeric":
        base = {"type": "integer" if col.is_integer else "number", "minimum": _python(col.min),
                "maximum": _python(col.max)}
        if col.is_integer:
            base = {**base, "minimum": int(np.ceil(col.min)), "maximum": int(np.floor(col.max))}

        def check_value(v):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (col.is_integer and not isinstance(v, int)):
                raise ValueError(f"{v!r} is not {'an integer' if col.is_integer else 'a number'}")
            if not base["minimum"] <= v <= base["maximum"] or _key(v) in masked:
                raise ValueError(f"{v!r} lies outside {base['minimum']}..{base['maximum']}" if _key(v) not in masked
                                 else f"{v!r} is masked")
            return v
    else:
        low, high = date_bounds(col)
        with_time = _has_time(col)
        # a grammar cannot compare dates, but a pattern can spell out the days of the protected range
        base = {"type": "string", "pattern": f"^{date_pattern(low, high)}{TIME if with_time else ''}$"}
        low, high = low.floor("D"), high.floor("D")  # checked by day; times past the last one are clipped

        def check_value(v):
            if not isinstance(v, str) or not re.fullmatch(base["pattern"], v):
                raise ValueError(f"{v!r} is not a date as {'YYYY-MM-DD hh:mm:ss' if with_time else 'YYYY-MM-DD'}")
            try:
                stamp = pd.Timestamp(v)
            except ValueError as exc:
                raise ValueError(f"{v!r} is no date") from exc
            if not low <= stamp.floor("D") <= high or _key(v) in masked:
                raise ValueError(f"{v!r} lies outside {low.date()}..{high.date()}" if _key(v) not in masked
                                 else f"{v!r} is masked")
            return v

    if not nullable:
        return ColumnRule(base, check_value)
    schema = {"enum": [*base["enum"], None]} if "enum" in base else {"anyOf": [base, {"type": "null"}]}
    return ColumnRule(schema, lambda v: None if v is None else check_value(v))


def _code_pattern(characters: list[str]) -> str:
    """Text whose i-th character is one kept at position i, of any length up to the kept positions."""
    pattern = ""
    for kept in reversed([k for k in characters]):
        if not kept:
            pattern = ""
            continue
        pattern = f"(?:[{''.join(_class_char(c) for c in kept)}]{pattern})?"
    return f"^{pattern}$"


def text_pattern(col: ColumnStats) -> str:
    """At least one kept word, in its usual casings, with runs of the kept characters that are no word's between
    words (and before and after): every word of a text that matches is a kept word, since a word never runs into
    the next. Never empty (an empty cell is null, where the column has nulls): a barely trained model wrote empty
    titles, which came out as the column's most common one."""
    between = "".join(_class_char(c) for c in text_characters(col) if not WORD.fullmatch(c))
    gap = f"[{between}]" if between else None
    kept = "|".join(_casings(w) for w in col.words or ())
    if not kept:  # no word is held by enough units: what is left of texts
        return f"^{gap}*$" if gap else "^$"
    if not gap:
        return f"^(?:{kept})$"
    return f"^{gap}*(?:{kept})(?:{gap}+(?:{kept}))*{gap}*$"


def _sample_texts(series: pd.Series, col: ColumnStats) -> list:
    """The column's texts as samples hold them (`_sample_text`); one left without a word is no text (null), or
    in a column that has none, the column's most common text."""
    fallback = None
    if col.null_share == 0 and col.words:
        kept = [c for c in col.categories or [] if isinstance(c, str) and c and WORD.search(c)]
        fallback = _sample_text(kept[0], col) if kept else col.words[0]
    texts = [_sample_text(str(v), col) for v in series.astype(object)]
    return [t if WORD.search(t) or not col.words else fallback for t in texts]


def _casings(word: str) -> str:
    """A kept word (lower case) as a pattern of its usual casings: lower, capitalised, upper. A grammar of any
    casing let a barely trained model spell "FisChEr" from pieces of other words."""
    return "|".join(re.escape(w) for w in dict.fromkeys((word, word.capitalize(), word.upper())))


def _class_char(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else ch


def date_pattern(low: pd.Timestamp, high: pd.Timestamp) -> str:
    """A regular expression for exactly the days from `low` to `high`, as YYYY-MM-DD: month lengths and leap
    years included, so every date the grammar lets through exists."""
    def choice(values) -> str:
        return "(?:" + "|".join(values) + ")"

    def days(first: int, last: int) -> str:
        return choice(f"{d:02d}" for d in range(first, last + 1))

    def months(year: int, first_month: int = 1, last_month: int = 12) -> str:
        options = []
        for month in range(first_month, last_month + 1):
            first = low.day if (year, month) == (low.year, low.month) else 1
            last = high.day if (year, month) == (high.year, high.month) else calendar.monthrange(year, month)[1]
            options.append(f"{month:02d}-{days(first, last)}")
        return choice(options)

    if high.year - low.year > 300:
        return r"\d{4}" + MONTH_DAY
    edges = [f"{year}-{months(year, low.month if year == low.year else 1, high.month if year == high.year else 12)}"
             for year in sorted({low.year, high.year})]
    middle = range(low.year + 1, high.year)
    for leap in (False, True):  # the years between share one pattern per kind of year
        years = [str(y) for y in middle if calendar.isleap(y) == leap]
        if years:
            edges.append(f"{choice(years)}-{months(2000 if leap else 2001)}")
    return choice(edges)
