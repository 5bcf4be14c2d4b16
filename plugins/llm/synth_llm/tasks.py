"""The tasks: what part of a sample is given (the context) and what the model writes (the output).

- rel_synth: the whole sample; with `cols_ctx`, it also learns to write the rest of a sample from those root
  columns (given at generation as seed data).
- rel_semi_synth: a random part of a real sample is given (each root field with chance `p_field`, each child
  record with `p_child`) and the whole sample written; with `ctx_as_const` the given part comes out unchanged.
- rel_predict: everything but the target columns (`cols_tgt`) is given; the targets are written.
"""

from __future__ import annotations

import json

import numpy as np

from synth_assets.plugin_api import SynthError
from synth_llm.options import LLMTrainOptions
from synth_llm.order_keys import OrderKey, from_keyed, to_keyed
from synth_llm.samples import Tree
from synth_llm.schema import Shape, full_shape, holds, output_model


def dumps(value) -> str:
    """Compact JSON, as the model reads and writes it (no free whitespace)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Task:
    def __init__(self, options: LLMTrainOptions, tree: Tree, dataset: str = "", keyed: dict[str, OrderKey] | None = None):
        """`keyed`: the child tables whose records the model writes keyed by their order value (synth_llm.order_keys)."""
        self.name = options.task
        self.options = options
        self.tree = tree
        self.keyed = keyed or {}
        root_columns = tree.columns(tree.root)
        unknown = [c for c in options.cols_ctx if c not in root_columns]
        if unknown:
            raise SynthError("train.cols_ctx names no modelled column of the root table", dataset=dataset,
                             table=tree.root, column=unknown[0], hint=f"use some of {root_columns}")
        for table, columns in options.cols_tgt.items():
            if table not in tree.children:
                raise SynthError("train.cols_tgt names no table of this dataset", dataset=dataset, table=table,
                                 hint=f"use one of {sorted(tree.children)}")
            missing = [c for c in columns if c not in tree.table(table).columns]
            if missing:
                raise SynthError("train.cols_tgt names no modelled column", dataset=dataset, table=table,
                                 column=missing[0], hint=f"use some of {tree.columns(table)}")
        self.full_shape = full_shape(tree)
        if self.name == "rel_predict":
            self.given_shape: Shape = {t: list(c) for t, c in options.cols_tgt.items() if c}
        elif options.cols_ctx:
            root = [c for c in self.full_shape[tree.root] if c not in options.cols_ctx]
            self.given_shape = {**self.full_shape, tree.root: root}
        else:
            self.given_shape = self.full_shape

    def output_shape(self, context_given: bool) -> Shape:
        """What the model writes: after a context, what it lacks; from nothing, the whole sample."""
        return self.given_shape if context_given else self.full_shape

    # schemas -----------------------------------------------------------------------------------------
    def full_schema(self) -> dict:
        """The whole sample's JSON Schema, as the prompt's {schema} shows it."""
        return output_model(self.tree, self.full_shape, keyed=self.keyed)[1]

    def prompt_schema(self, context_given: bool) -> dict:
        """The output's JSON Schema, as the prompt's {out_schema} shows it."""
        return output_model(self.tree, self.output_shape(context_given), keyed=self.keyed)[1]

    def groups(self, contexts: list) -> dict[tuple, list[int]]:
        """Contexts grouped by the output schema they are decoded under: a prediction writes as many records of
        each of the root's child tables as its context gives; otherwise one group, keyed ()."""
        tree = self.tree
        children = [c for c in tree.children[tree.root] if self.name == "rel_predict" and c in self.options.cols_tgt]
        out: dict[tuple, list[int]] = {}
        for i, context in enumerate(contexts):
            key = tuple((c, len((context or {}).get(c, []))) for c in children)
            out.setdefault(key, []).append(i)
        return out

    def generation_schema(self, group: tuple, context_given: bool, directives=None) -> tuple[type, dict]:
        """(pydantic model, JSON Schema) of the outputs of one group of contexts (`groups`)."""
        model, schema = output_model(self.tree, self.output_shape(context_given), directives, self.keyed)
        return model, _with_counts(schema, group)

    # what is given ---------------------------------------------------------------------------------
    def context(self, sample: dict, rng: np.random.Generator) -> dict | None:
        if self.name == "rel_synth":
            # with cols_ctx, half the examples give those columns and half give nothing: one model does both
            if not self.options.cols_ctx or rng.random() < 0.5:
                return None
            return {c: sample[c] for c in self.options.cols_ctx}
        if self.name == "rel_predict":
            return self._without_targets(sample, self.tree.root)
        return self._kept_part(sample, self.tree.root, rng)

    def generation_context(self, sample: dict, rng: np.random.Generator) -> dict | None:
        """What is given of a sample a generation starts from (the holdout's, or the user's)."""
        return self.context(sample, rng)

    def _without_targets(self, record: dict, name: str) -> dict:
        targets = set(self.options.cols_tgt.get(name, []))
        out = {c: record[c] for c in self.tree.columns(name) if c not in targets}
        for child in self.tree.children[name]:
            out[child] = [self._without_targets(r, child) for r in record.get(child, [])]
        return out

    def _kept_part(self, sample: dict, name: str, rng: np.random.Generator) -> dict:
        kept = {c: sample[c] for c in self.tree.columns(name) if rng.random() < self.options.p_field}
        for child in self.tree.children[name]:
            kept[child] = [r for r in sample.get(child, []) if rng.random() < self.options.p_child]
        return kept

    def output(self, sample: dict, context: dict | None) -> dict:
        """The part of a real sample the model learns to write after this context (keyed records as objects)."""
        shape = self.output_shape(context is not None)
        keyed = {t: rule for t, rule in self.keyed.items() if rule.column in shape.get(t, [])}
        return to_keyed(_restrict(sample, self.tree.root, self.tree, shape), self.tree.root, self.tree, keyed)

    def unkeyed(self, output: dict) -> dict:
        """An output with keyed records back as lists, each record holding its order value."""
        return from_keyed(output, self.tree.root, self.tree, self.keyed) if self.keyed else output

    # turning an output into a sample -----------------------------------------------------------------
    def problem(self, context: dict | None, output: dict) -> str | None:
        """Why an output that matches the schema still does not fit its context, or None."""
        if self.name != "rel_predict":
            return None
        return _count_mismatch(context, self.unkeyed(output), self.tree.root, self.tree)

    def combine(self, context: dict | None, output: dict) -> dict:
        output = self.unkeyed(output)
        if context is None:
            return output
        if self.name == "rel_synth":
            return {**context, **output}
        if self.name == "rel_predict":
            return _merge(context, output, self.tree.root, self.tree)
        if not self.options.ctx_as_const:
            return output
        return _overlay(output, context, self.tree.root, self.tree, self.keyed)

    def prompt(self, context: dict | None, schema: dict, out_schema: dict) -> str:
        return self.options.prompt_template.format(
            ctx=dumps(context) if context is not None else "", schema=dumps(schema), out_schema=dumps(out_schema))


def _with_counts(schema: dict, counts: tuple) -> dict:
    """The output schema with each root-level child list held to its count."""
    if not counts:
        return schema
    pinned = json.loads(json.dumps(schema))
    for child, n in counts:
        array = pinned.get("properties", {}).get(child)
        if isinstance(array, dict) and array.get("type") == "array":
            array["minItems"] = array["maxItems"] = n
    return pinned


def _restrict(record: dict, name: str, tree: Tree, shape: Shape) -> dict:
    out = {c: record[c] for c in shape.get(name, [])}
    for child in tree.children[name]:
        if holds(child, tree, shape):
            out[child] = [_restrict(r, child, tree, shape) for r in record.get(child, [])]
    return out


def _count_mismatch(context: dict, output: dict, name: str, tree: Tree) -> str | None:
    for child in tree.children[name]:
        if child not in output:
            continue
        given, written = context.get(child, []), output[child]
        if len(given) != len(written):
            return f"{child}: {len(written)} predicted records for {len(given)} given"
        for g, w in zip(given, written):
            problem = _count_mismatch(g, w, child, tree)
            if problem:
                return problem
    return None


def _merge(context: dict, output: dict, name: str, tree: Tree) -> dict:
    merged = {**context, **{k: v for k, v in output.items() if k not in tree.children[name]}}
    for child in tree.children[name]:
        if child in output:
            merged[child] = [_merge(g, w, child, tree) for g, w in zip(context.get(child, []), output[child])]
    return merged


def _overlay(output: dict, context: dict, name: str, tree: Tree, keyed: dict[str, OrderKey]) -> dict:
    """The output with the context's fields written over it; the context's child records take the first places,
    or, keyed by their order value, their own places (a written record of the same value gives way)."""
    merged = {**output, **{k: v for k, v in context.items() if k not in tree.children[name]}}
    for child in tree.children[name]:
        kept, written = context.get(child, []), list(output.get(child, []))
        rule = keyed.get(child)
        if rule is not None:
            by_value = {r[rule.column]: r for r in written if rule.column in r}
            by_value.update({r[rule.column]: r for r in kept})
            merged[child] = [by_value[v] for v in sorted(by_value)]
            continue
        written[: len(kept)] = kept  # grows the list when fewer were written
        merged[child] = written
    return merged
