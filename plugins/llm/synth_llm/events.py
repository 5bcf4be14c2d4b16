"""The event tasks: a subject's records of several child tables (its event tables) as one list of events in time
order, which the model writes.

A sample in event form holds the root's fields, the root's other child tables as lists (as in every task), when
its first event happened (`_start`, in the time column's own spelling), and its events in time order, each an
object naming its table: `"_events":[{"visits":{"_gap":0,"cost":12}},{"orders":{"_gap":3,...}}]`. `_gap` is the
time since the previous event (days for dates, seconds for times of day, the column's own units for numbers), so
a written history can never go back in time: the grammar admits no negative gap. The schema lists one object per
event table, so a forbidden table is simply left out, and the list's length is held to min/max_n_events. What a
schema cannot say (the sum of the gaps staying inside the time column's protected range) is checked on every
output, and an output that breaks it is written again.

- rel_event: the whole sample in event form.
- rel_event_predict: the root row and the first k events are given (k drawn at random in training; at generation
  `n_events`, or every given event), and the events after them are written: `n_future` of them, or as many as
  the model chooses (none ends the history).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Union

import numpy as np
import pandas as pd
from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, create_model

from synth_assets.plugin_api import ColumnStats, SynthError
from synth_llm.columns import DATE_FORMAT, DATETIME_FORMAT, _has_time, canonical, column_rule, date_bounds
from synth_llm.order_keys import OrderKey
from synth_llm.samples import Tree
from synth_llm.schema import Shape, _table_model
from synth_llm.tasks import Task

START, EVENTS, GAP = "_start", "_events", "_gap"
RESERVED = (START, EVENTS, GAP)
DAY_NS, SECOND_NS = 86_400 * 10**9, 10**9


@dataclass(frozen=True)
class EventLimits:
    """What one generation asks of the events it writes."""

    min_n_events: int = 0
    max_n_events: int | None = None
    forbidden: tuple[str, ...] = ()
    n_future: int | None = None  # rel_event_predict: exactly this many events after the given ones


@dataclass(frozen=True)
class EventLayout:
    """Which child tables are events, their time columns, and how times are written."""

    tables: tuple[str, ...]
    time: dict[str, str]  # event table -> its time column (its first order_by column)
    kind: str  # "datetime" or "numeric"
    unit_ns: int  # datetime: nanoseconds per gap unit (a day, or a second where any time column has times of day)
    start: ColumnStats  # the rule of `_start`: the time columns' protected range together
    gap_max: float
    gap_integer: bool
    gap_decimals: int | None
    max_events: int  # the longest event list: the tables' longest sequences together
    columns: dict[str, ColumnStats]  # event table -> its time column's stats

    @classmethod
    def of(cls, tree: Tree, names: list[str] | None, dataset: str = "") -> "EventLayout":
        children = tree.children[tree.root]
        timed = [c for c in children if tree.table(c).order_by]
        names = list(names) if names else timed
        if len(names) < 1:
            raise SynthError("the event tasks need event tables: child tables of the root with an order_by column",
                             dataset=dataset, table=tree.root,
                             hint="set `order_by` (a date or a number) on the root's child tables, or name them in "
                                  "train.event_tables")
        for name in names:
            if name not in children:
                raise SynthError("train.event_tables names no child table of the root", dataset=dataset, table=name,
                                 hint=f"use some of {children}")
            if not tree.table(name).order_by:
                raise SynthError("an event table needs an order_by column, its time", dataset=dataset, table=name,
                                 hint="set `order_by` on this table (a date or a number)")
        time = {name: tree.table(name).order_by[0] for name in names}
        columns = {name: tree.table(name).columns.get(column) for name, column in time.items()}
        for name, col in columns.items():
            if col is None or col.kind not in ("datetime", "numeric") or col.text_form:
                raise SynthError("an event table's time (its first order_by column) must be a date or a number",
                                 dataset=dataset, table=name, column=time[name],
                                 hint="order the table by a date or a number column")
            if col.null_share > 0:
                raise SynthError("an event table's time has nulls: events without a time have no place in the order",
                                 dataset=dataset, table=name, column=time[name],
                                 hint="fill or drop those records, or leave this table out of train.event_tables")
            if col.min is None or col.max is None:
                raise SynthError("an event table's time has no protected range", dataset=dataset, table=name,
                                 column=time[name], hint="give the table more records")
        for name in (tree.root, *names):
            clash = [r for r in RESERVED if r in tree.table(name).columns]
            if clash:
                raise SynthError(f"a column is named '{clash[0]}', which the event tasks use themselves",
                                 dataset=dataset, table=name, column=clash[0], hint="rename the column")
        kinds = {col.kind for col in columns.values()}
        if len(kinds) > 1:
            raise SynthError("the event tables' times must all be dates or all be numbers", dataset=dataset,
                             table=names[0], column=time[names[0]],
                             hint="leave the tables of the other kind out of train.event_tables")
        kind = kinds.pop()
        low, high = min(c.min for c in columns.values()), max(c.max for c in columns.values())
        first = columns[names[0]]
        start = first.model_copy(update={"min": low, "max": high, "null_share": 0.0, "categories": None,
                                         "discrete": False, "datetime_format": None})
        if kind == "datetime":
            with_time = any(_has_time(c) for c in columns.values())
            unit = SECOND_NS if with_time else DAY_NS
            if with_time:
                start = start.model_copy(update={"datetime_parts": sorted({*(first.datetime_parts or []), "hour"})})
            gap_max, integer, decimals = int(np.ceil((high - low) / unit)), True, None
        else:
            unit = 1
            integer = all(c.is_integer for c in columns.values())
            decimals = None if integer else max((c.decimals or 0) for c in columns.values())
            gap_max = float(high - low)
            gap_max = int(np.ceil(gap_max)) if integer else gap_max
        max_events = sum(tree.max_records(name) for name in names)
        return cls(tuple(names), time, kind, unit, start, gap_max, integer, decimals, max_events, columns)

    # times: JSON values <-> numbers ------------------------------------------------------------------
    def number(self, value) -> float:
        """A time as a number: nanoseconds for dates, the value itself otherwise."""
        return float(pd.Timestamp(value).value) if self.kind == "datetime" else float(value)

    def gap(self, later: float, earlier: float):
        step = (later - earlier) / self.unit_ns
        return int(round(step)) if self.gap_integer else float(round(step, self.gap_decimals or 6))

    def time_value(self, number: float, table: str | None = None):
        """A number back as a time column's JSON value (`table`'s, or the start's)."""
        col = self.column(table) if table else self.start
        if self.kind == "datetime":
            stamp = pd.Timestamp(int(round(number)), unit="ns")
            return stamp.strftime(DATETIME_FORMAT if _has_time(col) else DATE_FORMAT)
        return canonical(int(round(number))) if col.is_integer else round(number, col.decimals or 6)

    def column(self, table: str) -> ColumnStats:
        return self.columns[table]

    # samples <-> event form --------------------------------------------------------------------------
    def to_events(self, sample: dict) -> dict:
        """A sample (child tables as lists) in event form."""
        out = {k: v for k, v in sample.items() if k not in self.tables}
        timed = []
        for rank, name in enumerate(self.tables):
            for position, record in enumerate(sample.get(name, [])):
                timed.append((self.number(record[self.time[name]]), rank, position, name, record))
        timed.sort(key=lambda t: t[:3])
        # a history without events starts at the range's beginning: the start is never null, and says nothing
        out[START] = timed[0][4][self.time[timed[0][3]]] if timed else self.time_value(self.start.min)
        events, previous = [], timed[0][0] if timed else 0.0
        for number, _, _, name, record in timed:
            item = {GAP: self.gap(number, previous)}
            item.update({k: v for k, v in record.items() if k != self.time[name]})
            events.append({name: item})
            previous = number
        out[EVENTS] = events
        return out

    def timed(self, sample: dict, movable: bool = False) -> list[tuple[float, str, dict, bool]]:
        """An event-form sample's events as (time as a number, table, event, inside the table's time range).

        `movable` (a history written whole): one that runs past the end of the data's time range moves earlier by
        what it overruns, as far as its start allows, keeping its gaps. The model writes steps, not dates, so
        it cannot see the end coming; a tiny model left a quarter of rwm5yr's events past 1988 otherwise."""
        if not sample.get(EVENTS):
            return []
        now, times = self.number(sample[START]), []
        for event in sample[EVENTS]:
            (name, item), = event.items()
            now += item[GAP] * self.unit_ns
            times.append((now, name, item))
        if movable:
            overrun = max(now - self.last(name) for now, name, _ in times)
            room = max(self.number(sample[START]) - self.first(), 0.0)
            shift = min(max(overrun, 0.0), room)
            if self.gap_integer:  # whole units: dates stay on days, integers whole
                whole = np.ceil(shift / self.unit_ns) * self.unit_ns
                shift = whole if whole <= room else np.floor(shift / self.unit_ns) * self.unit_ns
            times = [(now - shift, name, item) for now, name, item in times]
        return [(now, name, item, self.inside(now, name)) for now, name, item in times]

    def last(self, table: str) -> float:
        """The latest time a table's events may have, as a number."""
        col = self.column(table)
        if self.kind != "datetime":
            return float(col.max)
        return float(date_bounds(col)[1].value + (DAY_NS - 1 if self.unit_ns == DAY_NS else 0))

    def first(self) -> float:
        """The earliest start, as a number."""
        return float(date_bounds(self.start)[0].value) if self.kind == "datetime" else float(self.start.min)

    def inside(self, number: float, table: str) -> bool:
        """Whether a time lies in its column's protected range (and, for a number of few values, is one)."""
        col = self.column(table)
        if self.kind == "datetime":
            low, high = date_bounds(col)
            # a date-only column is checked by day: its last day counts whole
            return low.value <= number <= high.value + (DAY_NS - 1 if self.unit_ns == DAY_NS else 0)
        if not col.min <= number <= col.max:
            return False
        return not (col.discrete and col.categories) or any(np.isclose(number, float(c)) for c in col.categories)

    def from_events(self, sample: dict, skip: int = 0, movable: bool = False) -> tuple[dict, int]:
        """An event-form sample back with its child tables as lists, each record holding its time, and how many
        events were left out for lying past the data's time range: the source's histories end where its data
        ends, so events written beyond are not observed, as real ones would not be. The first `skip` events
        (a prediction's given history) are left out too."""
        out = {k: v for k, v in sample.items() if k not in (START, EVENTS)}
        for name in self.tables:
            out[name] = []
        outside = 0
        for position, (now, name, item, inside) in enumerate(self.timed(sample, movable)):
            outside += not inside
            if position < skip or not inside:
                continue
            record = {k: v for k, v in item.items() if k != GAP}
            out[name].append({self.time[name]: self.time_value(now, name), **record})
        return out, outside

    # the schema and the pydantic model of what is written --------------------------------------------
    def output_model(self, tree: Tree, *, root: bool, start: bool, limits: EventLimits, directives=None,
                     keyed: dict[str, OrderKey] | None = None, given: int = 0) -> tuple[type, dict]:
        """(pydantic model, JSON Schema) of an output: the root's fields and its other child tables where `root`,
        `_start` where `start`, and the events. `given`: events a prediction's context holds already."""
        directives, keyed = directives or {}, keyed or {}
        fields: dict[str, Any] = {}
        properties: dict[str, dict] = {}
        if root:
            others = [c for c in tree.children[tree.root] if c not in self.tables]
            shape: Shape = {tree.root: tree.columns(tree.root), **{c: tree.columns(c) for c in _subtree(tree, others)}}
            base, schema = _table_model(tree.root, tree, shape, directives, keyed)
            properties.update(schema["properties"])
        else:
            base = create_model("Output", __config__=ConfigDict(extra="forbid"))
        if start:
            rule = column_rule(self.start)
            properties[START] = rule.schema
            fields["s"] = (Annotated[Any, AfterValidator(rule.check), WithJsonSchema(rule.schema)], Field(alias=START))
        kinds = [t for t in self.tables if t not in limits.forbidden]
        items = [self._event_model(tree, name, directives, keyed) for name in kinds]
        most = self.max_events if limits.max_n_events is None else limits.max_n_events
        least = limits.min_n_events
        if limits.n_future is not None:
            least = most = limits.n_future
        else:
            most, least = max(0, most - given), max(0, least - given)
        if least > most:
            raise SynthError(f"min_n_events ({limits.min_n_events}) is more than max_n_events ({most + given})",
                             table=tree.root, hint="lower generate.min_n_events or raise max_n_events")
        if not items and least > 0:
            raise SynthError("generate.forbidden_events forbids every event table, and events are asked for",
                             table=tree.root, hint="forbid fewer tables, or set min_n_events to 0")
        array = {"type": "array", "items": {"anyOf": [s for _, s in items]} if items else {"not": {}},
                 "minItems": least, "maxItems": most if items else 0}
        if len(items) == 1:
            array["items"] = items[0][1]
        item_type = Union[tuple(m for m, _ in items)] if items else Any
        properties[EVENTS] = array
        fields["e"] = (Annotated[list[item_type], Field(min_length=least, max_length=most if items else 0),
                                 WithJsonSchema(array)], Field(alias=EVENTS))
        model = create_model("EventOutput", __base__=base, **fields)
        schema = {"type": "object", "properties": properties, "required": list(properties),
                  "additionalProperties": False}
        return model, schema

    def _event_model(self, tree: Tree, name: str, directives, keyed) -> tuple[type, dict]:
        """One event of a table: `{"<table>": {"_gap": ..., <its columns but the time>, <its children>}}`."""
        columns = [c for c in tree.columns(name) if c != self.time[name]]
        shape = {name: columns, **{c: tree.columns(c) for c in _subtree(tree, tree.children[name])}}
        record_model, record_schema = _table_model(name, tree, shape, directives, keyed)
        # a gap is a number as any column's: its rule from stats of 0 to the longest gap the range allows
        gap = column_rule(ColumnStats(name=GAP, dtype="int64" if self.gap_integer else "float64", kind="numeric",
                                      null_share=0.0, n_unique=0, min=0.0, max=float(self.gap_max),
                                      is_integer=self.gap_integer, decimals=self.gap_decimals))
        record = create_model("Event", __base__=record_model,
                              g=(Annotated[Any, AfterValidator(gap.check), WithJsonSchema(gap.schema)],
                                 Field(alias=GAP)))
        item_schema = {**record_schema, "properties": {GAP: gap.schema, **record_schema["properties"]},
                       "required": [GAP, *record_schema["required"]]}
        wrapper_schema = {"type": "object", "properties": {name: item_schema}, "required": [name],
                          "additionalProperties": False}
        wrapper = create_model("EventOf", __config__=ConfigDict(extra="forbid"),
                               r=(record, Field(alias=name)))
        return wrapper, wrapper_schema


def _subtree(tree: Tree, names: list[str]) -> list[str]:
    out = []
    for name in names:
        out.append(name)
        out.extend(_subtree(tree, tree.children[name]))
    return out


class EventTask(Task):
    """rel_event and rel_event_predict (the module's docstring): samples in event form."""

    def __init__(self, options, tree: Tree, dataset: str = "", keyed: dict[str, OrderKey] | None = None):
        super().__init__(options, tree, dataset, {})  # events are ordered by their gaps, never keyed
        self.layout = EventLayout.of(tree, options.event_tables, dataset)
        self.dataset = dataset
        self.limits = EventLimits()
        self.n_events: int | None = None  # rel_event_predict at generation: history events given; None: all
        self.only_future = False
        self.outside = 0  # events written past the data's time range, left out (EventLayout.from_events)

    @property
    def predicts(self) -> bool:
        return self.name == "rel_event_predict"

    def with_generation(self, options) -> "EventTask":
        """This task as one generation's options ask (the events' limits, the history, what comes out)."""
        forbidden = tuple(options.forbidden_events)
        unknown = [t for t in forbidden if t not in self.layout.tables]
        if unknown:
            raise SynthError("generate.forbidden_events names no event table", dataset=self.dataset, table=unknown[0],
                             hint=f"use some of {list(self.layout.tables)}")
        self.limits = EventLimits(options.min_n_events, options.max_n_events, forbidden, options.n_future)
        self.n_events, self.only_future = options.n_events, options.only_future
        return self

    # schemas -----------------------------------------------------------------------------------------
    def full_schema(self) -> dict:
        return self.layout.output_model(self.tree, root=True, start=True, limits=EventLimits())[1]

    def prompt_schema(self, context_given: bool) -> dict:
        return self.layout.output_model(self.tree, root=not self.predicts, start=not context_given,
                                        limits=EventLimits())[1]

    def groups(self, contexts: list) -> dict[tuple, list[int]]:
        """A prediction's outputs by how many events its context gives (the start is written after none)."""
        out: dict[tuple, list[int]] = {}
        for i, context in enumerate(contexts):
            out.setdefault((len((context or {}).get(EVENTS, [])),), []).append(i)
        return out

    def generation_schema(self, group: tuple, context_given: bool, directives=None) -> tuple[type, dict]:
        given = group[0] if group else 0
        try:
            return self.layout.output_model(self.tree, root=not self.predicts, start=not (self.predicts and given),
                                            limits=self.limits, directives=directives, given=given)
        except SynthError as exc:
            raise SynthError(exc.message, dataset=self.dataset, table=exc.table, column=exc.column,
                             hint=exc.hint) from None

    # what is given and what is written ---------------------------------------------------------------
    def context(self, sample: dict, rng: np.random.Generator) -> dict | None:
        """Training: rel_event gives nothing; a prediction gives the root and its first k events (k at random,
        all of them included, which teaches where a history ends)."""
        if not self.predicts:
            return None
        form = self.layout.to_events(sample)
        return self._history(form, int(rng.integers(0, len(form[EVENTS]) + 1)))

    def generation_context(self, sample: dict, rng: np.random.Generator) -> dict:
        """Generation: the root and its first `n_events` events (all of them where n_events is None)."""
        form = self.layout.to_events(sample)
        n = len(form[EVENTS]) if self.n_events is None else min(self.n_events, len(form[EVENTS]))
        return self._history(form, n)

    def _history(self, form: dict, k: int) -> dict:
        context = {key: value for key, value in form.items() if key not in (START, EVENTS)}
        if k:
            context[START], context[EVENTS] = form[START], form[EVENTS][:k]
        return context

    def output(self, sample: dict, context: dict | None) -> dict:
        form = self.layout.to_events(sample)
        if not self.predicts:
            return form
        given = len((context or {}).get(EVENTS, []))
        return ({} if given else {START: form[START]}) | {EVENTS: form[EVENTS][given:]}

    def unkeyed(self, output: dict) -> dict:
        return output

    def _whole(self, context: dict | None, output: dict) -> tuple[dict, int]:
        """The event-form sample a context and an output make, and how many of its events were given."""
        if not self.predicts:
            return output, 0
        given = (context or {}).get(EVENTS, [])
        whole = {**(context or {}), START: (context or {}).get(START, output.get(START)),
                 EVENTS: [*given, *output.get(EVENTS, [])]}
        return whole, len(given)

    def problem(self, context: dict | None, output: dict) -> str | None:
        whole = self._whole(context, output)[0]
        inside = sum(1 for *_, ok in self.layout.timed(whole, movable=not self.predicts) if ok)
        if inside < self.limits.min_n_events:
            return (f"{inside} events inside the data's time range, fewer than min_n_events "
                    f"({self.limits.min_n_events})")
        return None

    def combine(self, context: dict | None, output: dict) -> dict:
        whole, given = self._whole(context, output)
        # a prediction's history is given: only what is written after it may fall past the range
        sample, outside = self.layout.from_events(whole, skip=given if self.only_future else 0,
                                                  movable=not self.predicts)
        self.outside += outside
        return sample
