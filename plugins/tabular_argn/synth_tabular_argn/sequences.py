"""Trees of tables as flat models: a root model, and for every child table a model of its next record.

Each table of the tree gets one flat TabularARGN (the same network, encoding and training as a flat table):
- the root's model draws its rows, with one more column per child table: how many records of it the row
  has (`@records:<child>`, at most the stats' protected longest), and where the child's order is relative (below)
  a second: its first record's time (`@first:<child>`), which that record is given;
- a child's model draws one record given its context, which comes first in its column order: the parent
  row's columns (`@parent.<column>`), the parent's number of records of this table, the record's position,
  and the previous `window` records of the same parent (`@previous1.<column>`, ...; empty before the first;
  continuous numbers on a coarser grid than their own, see `_as_context`). The encoding holds the previous
  record only; training widens it to the model's window (`with_window`), so the window is a training option.
  In long histories a record also sees which kept values of each few-valued column its parent's earlier records
  held (`@seen.<column>=<value>`, 0 or 1), however far back: a window forgets which tests a patient has.
  The context is given, never drawn, so it does not count in the model's loss.
  A bounded window keeps long sequences as cheap per record as short ones. Its own children's counts are
  columns of it too, so trees of any depth work the same way.
- after each continuous number of a child's record (not a relative order column) its model draws whether the value
  is the previous record's exactly (`@same.<column>`); where it is, generation copies it. Earlier records reach
  the model on a coarse grid, so readings carried forward, or written twice on one day, were lost.
- where a child's first `order_by` column is a date or a number of many values (`relative_order`), a record
  draws its step from the previous record (`@step.<column>`, the stats' protected `order_steps`) and the
  column itself only in the first record: times since the previous record are what histories repeat, and a
  history built from non-negative steps never goes back. Earlier records are context with their times whole.

Generation draws the root rows (or takes the user's seed rows and draws only their counts), then each child
table step by step: at step t every parent with more than t records gets its record t at once, as a batch.
Given first records of seed subjects (`seed_records`) are taken as they are at their steps, and the records
after them are drawn with them as the earlier records they follow; a subject's number of records is drawn
again until it is at least the number given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.plugin_api import (
    ORDER_STEP,
    Imputation,
    SEED_PARENT,
    ColumnStats,
    DatasetStats,
    SynthError,
    TableStats,
    context_key,
    parent_first,
    records_per_parent,
    time_numbers,
)

# names of the columns a model draws besides the table's own (no source column starts with "@")
PARENT = "@parent."
POSITION = "@position"
# an earlier record's continuous number, as context: its values held by this share of rows, then quantile bins
# of the rest; its own encoding (up to ~200 tokens) gives each token too few rows to learn from
CONTEXT_EXACT_SHARE = 0.01
CONTEXT_BINS = 10
RECORDS = "@records:"  # + child table: how many records of that table a row has
# + child table whose order is relative: the time of a row's first record of it, drawn with the row (with its
# number of records and its own columns) and given to that record, which would otherwise learn it from one row in
# a history's length: NAFLD's short histories began a thousand days too early
FIRST = "@first:"
# the window a model takes unless train.max_sequence_window says: the previous record alone for short histories
# (rwm5yr's 1-5 records a person: a window of 2 scored as 1 does and generated 28% slower, bench/RESULTS.md
# "Design measurements"), up to AUTO_WINDOW_MAX records for histories of LONG_HISTORY records or more, as many as
# keep the earlier records' columns within CONTEXT_COLUMNS
LONG_HISTORY = 16
AUTO_WINDOW_MAX = 4
CONTEXT_COLUMNS = 64
# a record of a long history sees which values of its few-valued columns (at most SEEN_MAX_VALUES kept) its earlier
# records held: NAFLD's subjects mixed more kinds of test than real ones (4.3 against 3.8 for 20-40 records)
# once a window of 4 had forgotten the first
SEEN = "@seen."
SEEN_MAX_VALUES = 12
SAME = "@same."  # + a continuous number: whether a record repeats the previous record's value exactly
COUNT_REDRAWS = 30  # draws of a seed subject's number of records, until it is at least its given records'
SUBJECT = "@subject"  # the root row a model's training row belongs to (DP-SGD clips a subject as one)


def previous(k: int) -> str:
    return f"@previous{k}."


def is_context(column: str) -> bool:
    """A column a child's model is given (its parent row, the position, earlier records), never draws."""
    return column.startswith((PARENT, "@previous", SEEN)) or column == POSITION


def seen_columns(table: TableStats) -> dict[str, tuple[str, object]]:
    """A child table's `@seen.` context columns: name -> (its own column, the kept value), for histories of
    LONG_HISTORY records or more and columns of 2 to SEEN_MAX_VALUES kept values (categories, few-valued numbers)."""
    if longest(table) < LONG_HISTORY:
        return {}
    out = {}
    for c in table.columns.values():
        values = c.categories or []
        if (c.kind == "categorical" and c.text_form != "text" or c.discrete) and 2 <= len(values) <= SEEN_MAX_VALUES:
            out.update({f"{SEEN}{c.name}={v}": (c.name, v) for v in values})
    return out


def seen_before(own: pd.DataFrame, parents: np.ndarray, seen: dict[str, tuple[str, object]]) -> pd.DataFrame:
    """Per record (rows run by parent, then position), whether an earlier record of its parent held each value."""
    out = {}
    for name, (column, value) in seen.items():
        hit = (own[column].astype(object) == value).to_numpy(dtype=np.int64)
        held = pd.Series(hit).groupby(parents, sort=False).cumsum().to_numpy() - hit
        out[name] = (held > 0).astype(np.int64)
    return pd.DataFrame(out, index=own.index)


def given_sub_columns(codes) -> int:
    """How many leading sub-columns of a model are its context: they do not count in its loss."""
    count = 0
    for code in codes:
        if not is_context(code.column):
            break
        count += len(code.sub_columns)
    return count


def parent_of(table: TableStats, stats: DatasetStats):
    """The table's context foreign key (its link to its parent in the tree), or None for a root."""
    return context_key(table.name, table)


def tree_order(stats: DatasetStats) -> list[str]:
    """Tables with every parent before its children."""
    return parent_first(stats.tables)


def children(stats: DatasetStats) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {name: [] for name in stats.tables}
    for name in tree_order(stats):
        fk = parent_of(stats.tables[name], stats)
        if fk is not None:
            out[fk.references].append(name)
    return out


def longest(table: TableStats) -> int:
    """The protected longest sequence of a child table (at least 1)."""
    return max(max(table.sequence_lengths or {1: 1.0}), 1)


def auto_window(stats: DatasetStats) -> int:
    """The window of earlier records a tree's child models see, from the data (see LONG_HISTORY)."""
    kids = [t for name, t in stats.tables.items() if parent_of(t, stats) is not None]
    if not kids or max(longest(t) for t in kids) < LONG_HISTORY:
        return 1
    widest = max(len(t.columns) for t in kids if longest(t) >= LONG_HISTORY)
    return int(max(1, min(AUTO_WINDOW_MAX, CONTEXT_COLUMNS // max(widest, 1))))


def _as_context(c: ColumnStats, name: str) -> ColumnStats:
    """A column of an earlier record, as the context of a later one: empty before that record exists, and a
    continuous number on a coarser grid (CONTEXT_BINS)."""
    update = {"name": name, "null_share": max(c.null_share, 0.01)}
    rest = c.rest_quantiles or c.quantiles
    if c.kind == "numeric" and not c.discrete and rest and len(rest) > CONTEXT_BINS + 1:
        held = [(v, share) for v, share in zip(c.categories or [], c.category_shares or []) if share >= CONTEXT_EXACT_SHARE]
        grid = np.quantile(np.asarray(rest, dtype=float), np.linspace(0, 1, CONTEXT_BINS + 1))
        update.update(requested_encoding="numeric_binned", categories=[v for v, _ in held],
                      category_shares=[share for _, share in held], rest_quantiles=[float(x) for x in grid])
    return c.model_copy(update=update)


def relative_order(table: TableStats) -> str | None:
    """The order column a child's model draws as steps from the previous record, or None: a date, or a number
    of many values (a year of few values keeps its own: steps scored no better on rwm5yr, bench/RESULTS.md)."""
    if table.order_steps is None or not table.order_by:
        return None
    column = table.columns.get(table.order_by[0])
    if column is None or not (column.kind == "datetime" or (column.kind == "numeric" and not column.discrete)):
        return None
    return column.name


def _own_columns(table: TableStats) -> dict[str, ColumnStats]:
    """The columns a child's model draws: the table's, and where its order is relative, the step too (both
    empty where the other holds the time)."""
    relative = relative_order(table)
    if relative is None:
        return dict(table.columns)
    columns = dict(table.columns)
    columns[relative] = columns[relative].model_copy(update={"null_share": max(columns[relative].null_share, 0.01)})
    steps = table.order_steps
    columns[ORDER_STEP + relative] = steps.model_copy(update={
        "name": ORDER_STEP + relative, "null_share": max(steps.null_share, 0.01), "min": max(steps.min or 0.0, 0.0)})
    return columns


def same_columns(table: TableStats) -> dict[str, str]:
    """A child table's continuous numbers (not the relative order column, whose steps say it) -> their `@same.`
    flag."""
    relative = relative_order(table)
    return {c.name: SAME + c.name for c in table.columns.values()
            if c.kind == "numeric" and not c.discrete and c.name != relative}


def _flag_stats(name: str) -> ColumnStats:
    """A 0/1 column of a model (`@seen.`, `@same.`): both values always possible."""
    return _count_stats(name, {0: 0.5, 1: 0.5}, by_digits=False)


def _with_same(columns: dict[str, ColumnStats], table: TableStats) -> dict[str, ColumnStats]:
    """A child's own columns with each `@same.` flag right after its number: drawn after it, so that scoring or
    predicting the number is never told whether it repeats."""
    same = same_columns(table)
    out = {}
    for name, c in columns.items():
        out[name] = c
        if name in same:
            out[same[name]] = _flag_stats(same[name])
    return out


def repeats_previous(own: pd.DataFrame, parents: np.ndarray, same: dict[str, str]) -> pd.DataFrame:
    """Per record (rows run by parent, then position), whether each number is its parent's previous record's."""
    before = own[list(same)].groupby(parents, sort=False).shift(1)
    return pd.DataFrame({flag: (own[number] == before[number]).to_numpy(dtype=np.int64)
                         for number, flag in same.items()}, index=own.index)


def _row_columns(name: str, kids: dict[str, list[str]], stats: DatasetStats) -> list[str]:
    """What a table's model draws for each row besides its own columns: each child table's number of records, and
    where that child's order is relative, its first record's time."""
    out = []
    for child in kids[name]:
        out.append(RECORDS + child)
        if relative_order(stats.tables[child]) is not None:
            out.append(FIRST + child)
    return out


def _first_stats(child: TableStats) -> ColumnStats | None:
    """The parent's column FIRST + child: the child's relative order column as its stats protect it, empty for a
    parent without records of it; None where the child's order is not relative."""
    relative = relative_order(child)
    if relative is None:
        return None
    none = (child.sequence_lengths or {}).get(0, 0.0)
    return child.columns[relative].model_copy(update={"name": FIRST + child.name, "null_share": float(none)})


def _count_stats(name: str, shares: dict[int, float], low: int = 0, by_digits: bool = True) -> ColumnStats:
    """A count (of records, a record's position) as a column: a category per value kept, or where it reaches
    LONG_HISTORY (and `by_digits`), a number written digit by digit, so that in a small table 23 records lie near
    24 (the encoding's DIGIT_LEADING_ROWS_PER_TOKEN); any count up to the longest kept may then come out."""
    values = sorted(k for k in shares if k >= low) or [low]
    total = sum(shares.get(k, 0.0) for k in values) or 1.0
    digits = by_digits and values[-1] >= LONG_HISTORY
    return ColumnStats(
        name=name, dtype="int64", kind="numeric", discrete=not digits, null_share=0.0, n_unique=len(values),
        categories=values, category_shares=[shares.get(k, 0.0) / total for k in values], rare_share=0.0,
        min=float(values[0]), max=float(values[-1]), quantiles=[float(values[0]), float(values[-1])],
        is_integer=True, decimals=0, requested_encoding="numeric_digit" if digits else None,
    )


def model_tables(stats: DatasetStats, window: int) -> dict[str, TableStats]:
    """The columns each table's model draws (see the module's docstring), as stats the encoding reads."""
    kids = children(stats)
    out: dict[str, TableStats] = {}
    for name in tree_order(stats):
        table = stats.tables[name]
        columns: dict[str, ColumnStats] = {}
        fk = parent_of(table, stats)
        if fk is not None:
            parent = stats.tables[fk.references]
            for c in parent.columns.values():
                columns[PARENT + c.name] = c.model_copy(update={"name": PARENT + c.name})
            columns[PARENT + RECORDS + name] = _count_stats(PARENT + RECORDS + name, table.sequence_lengths or {1: 1.0}, 1)
            cap = longest(table)
            # a token per position: with_window reads each record's position from its token
            columns[POSITION] = _count_stats(POSITION, {k: 1.0 for k in range(cap)}, by_digits=False)
            for k in range(1, window + 1):
                for c in table.columns.values():  # empty before the k-th record: nulls always occur
                    columns[previous(k) + c.name] = _as_context(c, previous(k) + c.name)
            for seen in seen_columns(table):
                columns[seen] = _flag_stats(seen)
        columns.update(_with_same(_own_columns(table), table) if fk is not None else table.columns)
        for child in kids[name]:
            columns[RECORDS + child] = _count_stats(RECORDS + child, stats.tables[child].sequence_lengths or {0: 1.0})
            first = _first_stats(stats.tables[child])
            if first is not None:
                columns[FIRST + child] = first
        out[name] = TableStats(
            name=name, rows=table.rows, primary_key=None, foreign_keys=[], column_order=list(columns),
            dtypes={c: (table.dtypes.get(c) or columns[c].dtype) for c in columns}, columns=columns,
        )
    return out


def with_window(codes: list, arrays: list[np.ndarray], window: int) -> tuple[list, list[np.ndarray]]:
    """A child model's codes and token matrices widened from the previous record to the previous `window`: the
    columns of record t-k (`@previous<k>.`, k = 2..window) are the `@previous1.` columns of the row k-1 places up,
    which is the same parent's record t-k+1 (rows run by parent, then position), and empty before the parent's
    k-th record. Encoded once with the previous record, a model takes its window when it trains."""
    from synth_tabular_argn.encoding import sub_column_groups

    groups = dict(zip((c.column for c in codes), sub_column_groups(codes)))
    first = [c for c in codes if c.column.startswith(previous(1))]
    if window <= 1 or not first or POSITION not in groups:
        return codes, arrays
    position = next(c for c in codes if c.column == POSITION)
    lagged_columns = [i for c in first for i in groups[c.column]]
    split = lagged_columns[-1] + 1
    at = codes.index(first[-1]) + 1
    wider = [c.model_copy(update={"column": previous(k) + c.column[len(previous(1)):]})
             for k in range(2, window + 1) for c in first]
    out = []
    for tokens in arrays:
        positions = np.asarray(position.values, dtype=np.int64)[tokens[:, groups[POSITION][0]].astype(np.int64)
                                                                  - position.offset]
        before = tokens[:, lagged_columns]
        firsts = positions == 0  # a parent's first record: its previous record is empty, which gives the tokens
        empty = before[firsts][0] if firsts.any() else np.zeros(len(lagged_columns), dtype=tokens.dtype)
        parts = [tokens[:, :split]]
        for k in range(2, window + 1):
            shifted = np.empty_like(before)
            if len(before) > k - 1:
                shifted[k - 1:] = before[: len(before) - (k - 1)]
            shifted[positions < k - 1] = empty
            parts.append(shifted)
        parts.append(tokens[:, split:])
        out.append(np.concatenate(parts, axis=1))
    return [*codes[:at], *wider, *codes[at:]], out


def model_frames(frames: dict[str, pd.DataFrame], stats: DatasetStats, window: int,
                 subjects: bool = False) -> dict[str, pd.DataFrame]:
    """The rows each table's model trains on: per table the columns of `model_tables`, from real tables. With
    `subjects`, each frame also holds SUBJECT: the position of the root row each row belongs to."""
    kids = children(stats)
    out = {}
    subject_of: dict[str, pd.Series] = {}  # table -> subject by primary key value
    for name in tree_order(stats):
        table = stats.tables[name]
        df = frames[name]
        fk = parent_of(table, stats)
        if fk is None:
            df = df.assign(**{SUBJECT: np.arange(len(df))})
        else:
            df = df.assign(**{SUBJECT: df[fk.column].map(subject_of[fk.references]).to_numpy()})
        if table.primary_key:
            subject_of[name] = pd.Series(df[SUBJECT].to_numpy(), index=df[table.primary_key].to_numpy())
        if fk is not None:
            parent = stats.tables[fk.references]
            df = df.sort_values([fk.column, *table.order_by], kind="stable").reset_index(drop=True)
            position = df.groupby(fk.column, sort=False).cumcount()
            df = df[(position < longest(table)).to_numpy() & df[fk.column].notna().to_numpy()].reset_index(drop=True)
            position = df.groupby(fk.column, sort=False).cumcount()
            parents = frames[fk.references].set_index(parent.primary_key)
            context = parents.loc[df[fk.column], list(parent.columns)].reset_index(drop=True)
            context.columns = [PARENT + c for c in context.columns]
            counts = df[fk.column].map(df[fk.column].value_counts())
            parts = [context, pd.DataFrame({PARENT + RECORDS + name: counts.to_numpy(), POSITION: position.to_numpy()})]
            own = df[list(table.columns)]
            for k in range(1, window + 1):
                lagged = own.groupby(df[fk.column].to_numpy(), sort=False).shift(k)
                lagged.columns = [previous(k) + c for c in own.columns]
                parts.append(lagged.reset_index(drop=True))
            parts.append(seen_before(own, df[fk.column].to_numpy(), seen_columns(table)).reset_index(drop=True))
            parts.append(repeats_previous(own, df[fk.column].to_numpy(), same_columns(table)).reset_index(drop=True))
            relative = relative_order(table)
            if relative is not None:  # the time in the first record, the steps after it
                numbers, _ = time_numbers(own[relative], table.columns[relative])
                steps = numbers.groupby(df[fk.column].to_numpy(), sort=False).diff()
                own = own.assign(**{relative: own[relative].where((position == 0).to_numpy()),
                                    ORDER_STEP + relative: steps.round() if _whole_steps(table) else steps})
            parts.append(own.reset_index(drop=True))
            rows = pd.concat(parts, axis=1)
        else:
            rows = df[list(table.columns)].reset_index(drop=True)
        if subjects:
            rows[SUBJECT] = df[SUBJECT].to_numpy()
        for child in kids[name]:
            child_fk = parent_of(stats.tables[child], stats)
            cap = max(stats.tables[child].sequence_lengths or {0: 1.0})
            per_row = records_per_parent(frames[child][child_fk.column], df[table.primary_key])
            rows[RECORDS + child] = np.minimum(per_row, cap)
            relative = relative_order(stats.tables[child])
            if relative is not None:  # its records come in their time order: the first is the earliest
                kept = frames[child][[child_fk.column, relative]].dropna(subset=[child_fk.column])
                earliest = kept.sort_values(relative, kind="stable").groupby(child_fk.column, sort=False)[relative].first()
                rows[FIRST + child] = earliest.reindex(df[table.primary_key].to_numpy()).to_numpy()
        out[name] = rows
    return out


def _whole_steps(table: TableStats) -> bool:
    """Whether steps are whole units, as the stats rounded them (days or seconds of dates, integers' steps)."""
    return table.order_steps.is_integer


def absolute_times(step: pd.DataFrame, table: TableStats, before: pd.Series | None) -> pd.Series:
    """A relative order column's values of one step of records: the first record's as drawn, later ones the
    previous record's (`before`, aligned with `step`) plus the drawn step (none drawn: the same time), spelled
    as the column is. They may run past the protected range until the whole history is drawn (`into_range`)."""
    relative = relative_order(table)
    column = table.columns[relative]
    if before is None:
        return step[relative]
    numbers, unit = time_numbers(before.reset_index(drop=True), column)
    if ORDER_STEP + relative in step.columns:  # through numpy: this runs at every step of every history
        drawn = np.asarray(pd.to_numeric(step[ORDER_STEP + relative].to_numpy(), errors="coerce"), dtype=float)
        later = numbers + np.clip(np.where(np.isnan(drawn), 0.0, drawn), 0.0, None)
    else:  # none where all were given
        later = numbers
    return _spelled(later, column, unit)


def into_range(records: pd.DataFrame, table: TableStats, parents: np.ndarray, fixed: np.ndarray) -> pd.Series:
    """A relative order column's values with each history kept in the protected range: one that runs past its
    end moves earlier by what it overruns, as far as its first record allows (its steps kept), and what is still
    beyond is clipped. Steps drawn one by one cannot see the end coming: NAFLD's lab histories left 4% of their
    records piled on the last day. Histories with given records (`fixed`, per parent) stay where they are."""
    relative = relative_order(table)
    column = table.columns[relative]
    numbers, unit = time_numbers(records[relative].reset_index(drop=True), column)
    bounds = pd.Series([column.min, column.max])
    if column.kind == "datetime":
        bounds = pd.Series(pd.to_datetime(bounds.round().astype("int64"), unit="ns"))
    low, high = time_numbers(bounds, column)[0].tolist()
    by_parent = numbers.groupby(parents)
    overrun = (by_parent.max() - high).clip(lower=0.0)
    room = (by_parent.min() - low).clip(lower=0.0)
    shift = np.minimum(overrun, room)
    if _whole_steps(table):  # whole units, within the room
        shift = np.minimum(np.ceil(shift), np.floor(room))
    shift[shift.index.isin(np.flatnonzero(fixed))] = 0.0
    moved = (numbers - shift.reindex(parents).to_numpy()).clip(low, high)
    return _spelled(moved, column, unit)


def _spelled(numbers: pd.Series, column: ColumnStats, unit: str) -> pd.Series:
    """Times as numbers (time_numbers' units) back as the column's values."""
    if column.kind != "datetime":
        return numbers.round() if column.is_integer else numbers.round(column.decimals if column.decimals is not None else 8)
    stamps = pd.Timestamp(0) + pd.to_timedelta(numbers, unit=unit)
    if column.datetime_format:
        return pd.Series(stamps.dt.strftime(column.datetime_format), dtype=object)
    return stamps


def _as_steps(record: pd.DataFrame, table: TableStats, before: pd.Series | None) -> pd.DataFrame:
    """Given records as a relative model holds them: the time in the first record, the step after it."""
    relative = relative_order(table)
    column = table.columns[relative]
    out = record.copy()
    if before is None:
        out[ORDER_STEP + relative] = np.nan
        return out
    now, _ = time_numbers(record[relative].reset_index(drop=True), column)
    then, _ = time_numbers(before.reset_index(drop=True), column)
    steps = (now - then).clip(lower=0.0)
    out[ORDER_STEP + relative] = (steps.round() if _whole_steps(table) else steps).to_numpy()
    out[relative] = None
    return out


def generate_tree(models: dict, stats: DatasetStats, options, seed_data: pd.DataFrame | None, device: str,
                  window: int, make_request, seed_records: dict[str, pd.DataFrame] | None = None
                  ) -> dict[str, pd.DataFrame]:
    """Every table: the root's rows (or the seed rows, with their counts drawn), then each child table record
    by record. `models` holds a loaded model per table; `make_request(options, seed_data)` builds a request.
    `seed_records`: per child table of the root, given first records of the seed rows (SEED_PARENT: the seed
    row's position), continued. Key columns hold our own keys: row numbers, children pointing at their parent's."""
    kids = children(stats)
    order = tree_order(stats)
    root = order[0]
    if len([n for n in order if parent_of(stats.tables[n], stats) is None]) != 1:
        raise SynthError("a tree of tables has exactly one root table", dataset=stats.dataset,
                         hint="link every other table to it through foreign keys")
    base_seed = options.seed if options.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    conditioning = _conditioning_by_table(options, stats)
    out: dict[str, pd.DataFrame] = {}
    root_options = options.model_copy(update={"seed": base_seed, **conditioning[root]})
    out[root] = models[root].generate(make_request(root_options, seed_data))
    given = _given_records(seed_records or {}, stats, root, seed_data)
    for name, (records, counts) in given.items():  # a subject has at least the records given for it
        out[root] = _enough_records(models[root], out[root], name, counts, seed_data, root_options, base_seed,
                                    make_request)
    for depth, name in enumerate(order[1:], start=1):
        table = stats.tables[name]
        model = models[name]
        # each table's records get the conditioning that names its columns, at every step
        child_options = options.model_copy(update={"seed_data": None, "sample_size": None, **conditioning[name]})
        fk = parent_of(table, stats)
        parent = stats.tables[fk.references]
        parent_rows = out[fk.references]
        lengths = pd.to_numeric(parent_rows[RECORDS + name]).fillna(0).astype(int).to_numpy()
        context = parent_rows[list(parent.columns)].copy()
        context.columns = [PARENT + c for c in context.columns]
        context[PARENT + RECORDS + name] = lengths
        parents_tokens = model.encode(context)  # once: each step takes its parents' rows
        steps = int(lengths.max(initial=0))
        positions = model.encode(pd.DataFrame({POSITION: np.arange(steps)}))  # once: step t takes row t
        own = list(table.columns)
        relative = relative_order(table)
        earlier = _EarlierRecords(model, own, window, len(parent_rows))
        seen = _SeenValues(model, table, len(parent_rows))
        # the model's `@same.` flags (none for a model trained without them), by the number each is drawn after
        repeats = {number: flag for number, flag in same_columns(table).items() if flag in model.planner.by_name}
        # a later record's time comes from its step: given empty, as training saw it, its sub-columns are not drawn
        # (NAFLD's days are three of a record's eight: their heads were a third of the drawing)
        empty_time = model.encode(pd.DataFrame({relative: [None]})) if relative is not None else {}
        # the first record's time, drawn with its parent (a model trained before FIRST has none: it draws it)
        first_time = parent_rows[FIRST + name] if relative is not None and FIRST + name in parent_rows.columns else None
        extra = [c for c in _row_columns(name, kids, stats) if c in model.planner.by_name]
        last: dict[str, np.ndarray] = {c: np.full(len(parent_rows), None, dtype=object) for c in own}
        drawn, drawn_parents = [], []  # each step's records, and the parent of each
        seeded, seeded_counts = given.get(name, (None, np.zeros(len(parent_rows), dtype=int)))
        for t in range(steps):
            active = np.flatnonzero(lengths > t)
            known = {c: tokens[active] for c, tokens in parents_tokens.items()}
            known.update({c: np.repeat(tokens[t : t + 1], len(active), axis=0) for c, tokens in positions.items()})
            known.update(earlier.tokens(t, active))
            known.update(seen.tokens(active))
            if t > 0:
                known.update({c: np.repeat(tokens, len(active), axis=0) for c, tokens in empty_time.items()})
            step_options = child_options.model_copy(update={"seed": base_seed + 7919 * depth + t + 1})
            if relative is not None:  # a first record's time, and a later one's step, are never drawn empty
                needed = relative if t == 0 else ORDER_STEP + relative
                already = step_options.imputation.columns if step_options.imputation else []
                step_options = step_options.model_copy(update={"imputation": Imputation(columns=[*already, needed])})
            def before(column: str) -> pd.Series:  # each active parent's record t-1
                return pd.Series(last[column][active])

            fixed = seeded_counts[active] > t  # parents whose record t is given: its own columns are kept
            parts = []
            if (~fixed).any():
                given_rows, first = _rows(known, ~fixed), None
                if t == 0 and first_time is not None:  # kept as drawn with the parent; drawn here where empty
                    first = pd.DataFrame({relative: first_time.to_numpy()[active[~fixed]]})
                    given_rows.update(model.encode(first))
                parts.append(model.draw_after(step_options, given_rows, keep=first))
            record = None
            if fixed.any():
                record = seeded.loc[seeded["__parent"].isin(active[fixed]) & (seeded["__position"] == t)]
                record = record.set_index("__parent").loc[active[fixed], own].reset_index(drop=True)
                given_record = record
                if relative is not None:  # the model is given the record as it draws one: a step after the first
                    given_record = _as_steps(record, table, before(relative)[fixed] if t > 0 else None)
                with_own = {**_rows(known, fixed), **model.encode(given_record)}
                parts.append(model.draw_after(step_options, with_own, keep=record))
            step = _stacked(parts) if len(parts) == 2 else parts[0]
            if len(parts) == 2:  # back in the order of `active`
                placed = np.concatenate([np.flatnonzero(~fixed), np.flatnonzero(fixed)])
                step = step.iloc[np.argsort(placed, kind="stable")].reset_index(drop=True)
            if relative is not None:  # the times from the steps: a history never goes back
                step[relative] = absolute_times(step, table, before(relative) if t > 0 else None).to_numpy()
                if record is not None:  # given records keep their times exactly
                    step.loc[np.flatnonzero(fixed), relative] = record[relative].to_numpy()
            elif t > 0 and table.order_by and seeded is not None:  # a continuation never goes back before its seeds
                after = (~fixed) & (seeded_counts[active] > 0)
                step = _in_order(lambda opts, rows: model.draw_after(opts, _rows(known, rows)), step, after,
                                 pd.DataFrame({c: before(c) for c in own}), table.order_by, step_options)
            if t > 0:  # numbers drawn as the previous record's take its value exactly
                for number, flag in repeats.items():
                    _repeat_previous(step, ~fixed, number, flag, before(number))
            step_rows = step[[*own, *extra]]
            drawn.append(step_rows)
            drawn_parents.append(active)
            for c in own:
                last[c][active] = step_rows[c].to_numpy()
            earlier.add(t, active, step_rows)
            seen.add(active, step_rows)
        records = _stacked(drawn) if drawn else pd.DataFrame(columns=[*own, *extra])
        records["__parent"] = np.concatenate([np.zeros(0, dtype=np.int64), *drawn_parents])
        records["__position"] = np.repeat(np.arange(len(drawn_parents)), [len(a) for a in drawn_parents]).astype(np.int64)
        records = records.sort_values(["__parent", "__position"], kind="stable").reset_index(drop=True)
        if relative is not None and len(records):
            records[relative] = into_range(records, table, records["__parent"].to_numpy(dtype=np.int64),
                                           seeded_counts > 0).to_numpy()
        records[fk.column] = records["__parent"].to_numpy()  # our keys: the parent's row number
        out[name] = records.drop(columns=["__parent", "__position"])
    result = {}
    for name in order:
        df = out[name]
        table = stats.tables[name]
        keep = [c for c in df.columns if not c.startswith((RECORDS, FIRST))]
        df = df[keep].reset_index(drop=True)
        if table.primary_key:
            df[table.primary_key] = np.arange(len(df))
        result[name] = df
    return result


def _conditioning_by_table(options, stats: DatasetStats) -> dict[str, dict]:
    """Rebalancing, imputation and fairness, each for the table whose columns it names (a record column's at every
    step of that table's records); a column of no table, or fairness across tables, is an error naming it."""
    owner = {}
    for name, table in stats.tables.items():
        for column in table.columns:
            owner.setdefault(column, name)  # a name two tables share: the first, parents before children

    def table_of(column: str, what: str) -> str:
        if column not in owner:
            raise SynthError(f"{what} names no modelled column of any table", dataset=stats.dataset, column=column,
                             hint=f"choose one of {', '.join(sorted(owner))}")
        return owner[column]

    out: dict[str, dict] = {name: {"rebalancing": None, "imputation": None, "fairness": None} for name in stats.tables}
    if options.rebalancing is not None:
        out[table_of(options.rebalancing.column, "rebalancing")]["rebalancing"] = options.rebalancing
    if options.imputation is not None:
        by_table: dict[str, list[str]] = {}
        for column in options.imputation.columns:
            by_table.setdefault(table_of(column, "imputation"), []).append(column)
        for name, columns in by_table.items():
            out[name]["imputation"] = options.imputation.model_copy(update={"columns": columns})
    if options.fairness is not None:
        fairness = options.fairness
        tables = {table_of(c, "fairness") for c in [fairness.target_column, *fairness.sensitive_columns]}
        if len(tables) > 1:
            raise SynthError(f"fairness names columns of several tables ({', '.join(sorted(tables))})",
                             dataset=stats.dataset, column=fairness.target_column,
                             hint="give a target and sensitive columns of one table")
        out[tables.pop()]["fairness"] = fairness
    return out


def _given_records(seed_records: dict[str, pd.DataFrame], stats: DatasetStats, root: str,
                   seed_data: pd.DataFrame | None) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Per child table of the root: its given records with their parent (`__parent`, a seed row's position) and
    position under it (`__position`), and how many each seed row has."""
    out = {}
    for name, records in seed_records.items():
        table = stats.tables.get(name)
        fk = parent_of(table, stats) if table is not None else None
        if fk is None or fk.references != root:
            raise SynthError("seed records continue a child table of the root table", table=name,
                             hint=f"give records of a table whose foreign key references '{root}'")
        if seed_data is None:
            raise SynthError("seed records need their subjects as seed rows", table=name,
                             hint="give the subjects too (seed_data of the root table, ctx_data in the Python API)")
        records = records.drop(columns=[table.primary_key], errors="ignore") if table.primary_key else records
        unknown = [c for c in records.columns if c not in table.columns and c != SEED_PARENT]
        if unknown:
            raise SynthError("the seed records hold a column the table does not have", table=name, column=unknown[0])
        parents = records[SEED_PARENT].to_numpy().astype(int)
        if len(parents) and (parents.min() < 0 or parents.max() >= len(seed_data)):
            raise SynthError("a seed record's subject is not among the seed rows", table=name)
        records = records.reset_index(drop=True).assign(
            __parent=parents, __position=records.groupby(SEED_PARENT, sort=False).cumcount().to_numpy())
        for column in table.columns:  # a column left out of the given records is null in them
            if column not in records.columns:
                records[column] = None
        if len(records) and records["__position"].max() >= longest(table):
            raise SynthError(f"a subject has more given records than the longest sequence kept ({longest(table)})",
                             table=name, hint="give fewer first records per subject")
        out[name] = (records, np.bincount(parents, minlength=len(seed_data)))
    return out


def _enough_records(model, rows: pd.DataFrame, name: str, given: np.ndarray, seed_data: pd.DataFrame, options,
                    base_seed: int, make_request) -> pd.DataFrame:
    """The root rows with each seed row's number of `name` records drawn again (its other columns kept) until it
    is at least its given records': a draw from the number of records given that there are at least that many.
    After COUNT_REDRAWS draws the rest get just their given records."""
    column = RECORDS + name
    rows = rows.copy()
    counts = pd.to_numeric(rows[column]).fillna(0).astype(int).to_numpy()
    for attempt in range(COUNT_REDRAWS):
        short = np.flatnonzero(counts < given)
        if not len(short):
            break
        again = model.generate(make_request(options.model_copy(update={"seed": base_seed + 104_729 * (attempt + 1)}),
                                            seed_data.iloc[short].reset_index(drop=True)))
        counts[short] = pd.to_numeric(again[column]).fillna(0).astype(int).to_numpy()
    rows[column] = np.maximum(counts, given)
    return rows


def _in_order(redraw, step: pd.DataFrame, rows: np.ndarray, before: pd.DataFrame, order_by: list[str],
              options) -> pd.DataFrame:
    """Records `rows` of a step drawn again (`redraw(options, mask)`) while an `order_by` value falls before the
    previous record's (the source's records are in that order, and the core sorts them so: a continuation drawn
    earlier than its given records would come out before them); after COUNT_REDRAWS draws, the previous record's
    value."""
    step = step.copy()
    for attempt in range(COUNT_REDRAWS + 1):
        bad = rows & _before(step, before, order_by)
        if not bad.any():
            return step
        if attempt == COUNT_REDRAWS:
            break
        again = redraw(options.model_copy(update={"seed": options.seed + 611_953 * (attempt + 1)}), bad)
        _put(step, bad, again)
    for column in order_by:
        late = rows & _before(step, before, [column])
        _put(step, late, before.loc[late, [column]])
    return step


def _stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames one under another, each column's dtype from the frames that hold a value of it (a column all null in
    one step, or missing from its given records, neither turns the rest to objects nor warns)."""
    columns = list(dict.fromkeys(c for frame in frames for c in frame.columns))
    held = []
    for frame in frames:  # numpy's ints and booleans hold no null: only the other columns are looked at
        keep = [c for c, values in frame.items()
                if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iub" or pd.notna(values.to_numpy()).any()]
        held.append(frame[keep] if len(keep) < frame.shape[1] else frame)
    return pd.concat(held, ignore_index=True).reindex(columns=columns)


def _rows(tokens: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Some rows (a mask or positions) of each column's tokens."""
    return {column: values[rows] for column, values in tokens.items()}


class _EarlierRecords:
    """The tokens of each parent's last `window` records as context (`@previous<k>.` columns), encoded once
    when drawn: at step t, record t-k is the k-th earlier one. Memory: `window` steps of tokens."""

    def __init__(self, model, own: list[str], window: int, n_parents: int):
        self.model, self.own, self.window, self.n = model, own, window, n_parents
        self.steps: dict[int, dict[str, np.ndarray]] = {}
        # every `@previous<k>.` column is encoded as `@previous1.` is (with_window copies its codes); before a
        # parent's k-th record its columns are empty
        self.empty = model.encode(pd.DataFrame({previous(1) + c: [None] for c in own}))

    def add(self, t: int, active: np.ndarray, records: pd.DataFrame) -> None:
        """Step t's records (one per `active` parent, their own columns among others)."""
        tokens = self.model.encode({previous(1) + c: records[c] for c in self.own})
        full = {}
        for column, values in tokens.items():
            full[column] = np.repeat(self.empty[column], self.n, axis=0)
            full[column][active] = values
        self.steps[t] = full
        self.steps.pop(t - self.window, None)

    def tokens(self, t: int, active: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for k in range(1, self.window + 1):
            for c in self.own:
                name = previous(1) + c
                values = self.steps[t - k][name][active] if t - k >= 0 else np.repeat(self.empty[name], len(active), 0)
                out[previous(k) + c] = values
        return out


class _SeenValues:
    """Per parent, whether its records so far held each value of the model's `@seen.` columns (none for a model
    trained without them), as context tokens."""

    def __init__(self, model, table: TableStats, n_parents: int):
        self.columns = {name: what for name, what in seen_columns(table).items() if name in model.planner.by_name}
        self.held = {name: np.zeros(n_parents, dtype=np.int64) for name in self.columns}
        self.values = model.encode(pd.DataFrame({name: [0, 1] for name in self.columns})) if self.columns else {}

    def add(self, active: np.ndarray, records: pd.DataFrame) -> None:
        # each column read once, not once per value; a null (None, NaN, pd.NA from given records) holds no value
        values = {column: records[column].to_numpy(dtype=object) for column, _ in self.columns.values()}
        present = {column: pd.notna(column_values) for column, column_values in values.items()}
        for name, (column, value) in self.columns.items():
            hit = np.zeros(len(records), dtype=np.int64)
            hit[present[column]] = values[column][present[column]] == value
            self.held[name][active] |= hit

    def tokens(self, active: np.ndarray) -> dict[str, np.ndarray]:
        return {name: self.values[name][self.held[name][active]] for name in self.columns}


def _repeat_previous(step: pd.DataFrame, drawn: np.ndarray, number: str, flag: str, before: pd.Series) -> None:
    """In the `drawn` rows of a step, `number` set to the previous record's (`before`) where its flag came out 1."""
    previous_values = before.to_numpy(dtype=object)
    rows = drawn & (pd.to_numeric(step[flag], errors="coerce").to_numpy() == 1) & pd.notna(previous_values)
    if rows.any():
        _put(step, rows, pd.DataFrame({number: previous_values[rows]}))


def _put(frame: pd.DataFrame, rows: np.ndarray, values: pd.DataFrame) -> None:
    """`values` into the `rows` (a mask) of `frame`, column by column, each keeping its dtype."""
    for column in values.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, np.dtype) and dtype.kind == "f":  # floats (most numbers) stay in numpy: no objects
            merged = frame[column].to_numpy(copy=True)
            merged[rows] = pd.to_numeric(values[column]).to_numpy(dtype=float)
            frame[column] = merged
            continue
        merged = frame[column].to_numpy(dtype=object).copy()
        merged[rows] = values[column].to_numpy(dtype=object)
        frame[column] = pd.Series(merged, index=frame.index).astype(dtype)


def _before(step: pd.DataFrame, before: pd.DataFrame, order_by: list[str]) -> np.ndarray:
    """Rows whose `order_by` values sort before the previous record's (compared column by column, as a sort
    would; a null compares as unknown: never before)."""
    earlier = np.zeros(len(step), dtype=bool)
    decided = np.zeros(len(step), dtype=bool)
    for column in order_by:
        if column not in step.columns:
            continue
        try:
            new, old = step[column], before[column].astype(step[column].dtype)
            less = (new < old).fillna(False).to_numpy(dtype=bool)
            more = (new > old).fillna(False).to_numpy(dtype=bool)
        except (TypeError, ValueError):
            continue
        earlier |= less & ~decided
        decided |= less | more
    return earlier
