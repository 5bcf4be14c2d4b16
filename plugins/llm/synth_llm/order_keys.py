"""A child table's records keyed by their order value, so no output repeats a value or leaves the order.

Where the first `order_by` column of a child table is a number with few kept values that never repeats under a
parent in training (a panel's year; the stats' `order_increases`), the model writes that table's records as an
object keyed by the value, `"records":{"1984":{...},"1986":{...}}`, instead of a list. The schema lists the kept
values as optional properties in rising order (at most the longest sequence of them), and the grammar keeps
properties in schema order, each at most once: a repeated, falling or unknown year cannot be written, and a
masked one is simply not listed. The model still reads each record's year itself. Written as values in a list,
the default model repeated a person's year in about a quarter of rwm5yr's generated persons; written as steps
from the previous record, it could not keep their sum inside the years (bench/RESULTS.md).

Only what the model writes is keyed (`Task.output`; `Task.unkeyed` turns it back): samples, contexts and prompts
keep lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from synth_llm.columns import canonical
from synth_llm.samples import Tree

MAX_KEYS = 100  # more kept values than this: the records stay a list (the grammar grows with keys × length)


@dataclass(frozen=True)
class OrderKey:
    column: str
    values: tuple  # the kept values in rising order, as JSON writes them

    def key(self, value) -> str:
        return str(canonical(value))

    def keys(self, masked=()) -> list[str]:
        masked = {self.key(v) for v in masked}
        return [k for k in map(self.key, self.values) if k not in masked]

    @cached_property
    def _by_key(self) -> dict:
        return {self.key(v): canonical(v) for v in self.values}

    def value(self, key: str):
        return self._by_key[key]


def keyed_tables(tree: Tree) -> dict[str, OrderKey]:
    """Per child table whose order column qualifies, its key."""
    out = {}
    for name, table in tree.stats.tables.items():
        if name not in tree.link or not table.order_increases or not table.order_by:
            continue
        column = table.columns.get(table.order_by[0])
        if (column is None or column.kind != "numeric" or not column.discrete or not column.categories
                or column.null_share > 0 or len(column.categories) > MAX_KEYS):
            continue
        out[name] = OrderKey(column.name, tuple(sorted(canonical(v) for v in column.categories)))
    return out


def to_keyed(record: dict, name: str, tree: Tree, keyed: dict[str, OrderKey]) -> dict:
    """The record with its keyed children's lists as objects (in place; `record` is the task's own copy). `keyed`
    holds only the tables whose order column the output holds."""
    for child in tree.children[name]:
        items = record.get(child)
        if items is None:
            continue
        for item in items:
            to_keyed(item, child, tree, keyed)
        rule = keyed.get(child)
        if rule is not None:
            by_key: dict = {}
            for item in items:
                # protection maps a rare value onto a kept neighbour, which a record of the same parent may
                # hold already: the first record keeps the key
                by_key.setdefault(rule.key(item[rule.column]), {k: v for k, v in item.items() if k != rule.column})
            record[child] = by_key
    return record


def from_keyed(record: dict, name: str, tree: Tree, keyed: dict[str, OrderKey]) -> dict:
    """A copy of an output with its keyed children back as lists, each record holding its order value."""
    out = dict(record)
    for child in tree.children[name]:
        if child not in record:
            continue
        items = record[child]
        rule = keyed.get(child)
        if rule is not None and isinstance(items, dict):
            items = [{rule.column: rule.value(key), **item} for key, item in items.items()]
        out[child] = [from_keyed(item, child, tree, keyed) for item in items]
    return out
