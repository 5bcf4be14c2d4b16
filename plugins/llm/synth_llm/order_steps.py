"""A child table's order column written as steps from the record before, in what the model reads and writes.

Written as absolute values, a model readily repeats a subject's year: on rwm5yr 11.7% of the LLM's records did,
where the real records never do. As steps, a grammar can rule that out: where no training subject holds two
records with the same order value, every step is at least one. The first record steps from just below the
column's smallest value, so one rule serves every record and no `prefixItems` are needed.

Only the model's text changes. Samples, contexts and tasks keep absolute values: `to_steps` runs on an output
just before it is written as training text, `from_steps` on a decoded output before it is validated, where the
pydantic model then checks the absolute values.

A grammar cannot bound a sum, so a subject's steps may add up past the column's maximum: the records from there
on are cut, as records past the longest list are, since the data holds none there (the count is reported).

Steps apply to the first `order_by` column of a child table when it is an integer without nulls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from synth_llm.samples import Tree


class OrderStep(BaseModel):
    table: str
    column: str
    base: int  # the value before a subject's first record
    min_step: int  # 1 where no training subject repeats a value, else 0
    max_step: int

    @property
    def last(self) -> int:
        return self.base + self.max_step

    def schema(self) -> dict:
        return {"type": "integer", "minimum": self.min_step, "maximum": self.max_step}


@dataclass
class OrderSteps:
    """The stepped columns of a dataset: child table -> its OrderStep."""

    tree: Tree
    steps: dict[str, OrderStep]
    cut: int = field(default=0)  # records `from_steps` cut: their steps went past the column's maximum

    @classmethod
    def learn(cls, tree: Tree, samples: list[dict]) -> "OrderSteps":
        """The steppable order columns, and whether the training samples ever repeat a value within a subject."""
        steps = {}
        for name in tree.link:
            table = tree.table(name)
            column = table.order_by[0] if table.order_by else None
            stats = table.columns.get(column) if column else None
            if stats is None or stats.kind != "numeric" or stats.null_share > 0 or stats.min is None:
                continue
            values = stats.categories if stats.discrete and stats.categories else [stats.min, stats.max]
            if not (stats.is_integer or all(float(v).is_integer() for v in values)):
                continue
            repeats = any(a == b for values in _lists(samples, tree.root, name, column, tree)
                          for a, b in zip(values, values[1:]))
            min_step = 0 if repeats else 1
            low, high = int(stats.min), int(stats.max)
            steps[name] = OrderStep(table=name, column=column, base=low - min_step, min_step=min_step,
                                    max_step=high - low + min_step)
        return cls(tree, steps)

    @classmethod
    def of(cls, tree: Tree, saved: list[dict] | None) -> "OrderSteps":
        return cls(tree, {s["table"]: OrderStep.model_validate(s) for s in saved or []})

    def dump(self) -> list[dict]:
        return [s.model_dump() for s in self.steps.values()]

    def column_schema(self, table: str, column: str) -> dict | None:
        """The JSON Schema the model writes this column under, where it is stepped."""
        step = self.steps.get(table)
        return step.schema() if step is not None and step.column == column else None

    def to_steps(self, output: dict) -> dict:
        return self._convert(output, self.tree.root, absolute=False) if self.steps else output

    def from_steps(self, output: dict) -> dict:
        """Absolute values again; a step that is no integer is left for validation to refuse."""
        return self._convert(output, self.tree.root, absolute=True) if self.steps else output

    def _convert(self, record: dict, name: str, absolute: bool) -> dict:
        out = dict(record)
        for child in self.tree.children[name]:
            items = record.get(child)
            if not isinstance(items, list):
                continue
            items = [self._convert(r, child, absolute) if isinstance(r, dict) else r for r in items]
            step = self.steps.get(child)
            if step is not None:
                items = self._stepped(items, step, absolute)
            out[child] = items
        return out

    def _stepped(self, items: list, step: OrderStep, absolute: bool) -> list:
        previous, out = step.base, []
        for item in items:
            value = item.get(step.column) if isinstance(item, dict) else None
            if isinstance(value, bool) or not isinstance(value, int):
                return out + items[len(out):]  # not this model's form: validation says why
            if absolute and previous + value > step.last:
                self.cut += len(items) - len(out)
                return out
            if absolute:
                previous += value
                out.append({**item, step.column: previous})
            else:
                out.append({**item, step.column: value - previous})
                previous = value
        return out


def _lists(samples: list[dict], name: str, target: str, column: str, tree: Tree):
    """Each subject's list of `column` values in table `target`, found under the root samples."""
    for sample in samples:
        for child in tree.children[name]:
            items = sample.get(child, [])
            if child == target:
                yield [r.get(column) for r in items]
            else:
                yield from _lists(items, child, target, column, tree)
