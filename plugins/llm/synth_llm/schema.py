"""The JSON Schema of an output, and the pydantic model that validates one, built together from the stats.

Categories become enums (protected rare values never listed: only the rare token stands for them), numbers get
the protected bounds, dates a fixed format, child lists a maximum length. The schema is what the engines decode
under; the pydantic model re-checks every output (dates in range, say, which a grammar cannot express), and an
output that fails is generated again.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, create_model

from synth_assets.plugin_api import SynthError
from synth_llm.columns import column_rule
from synth_llm.options import ColumnDirective
from synth_llm.order_keys import OrderKey
from synth_llm.samples import Tree

Shape = dict[str, list[str]]  # table -> the columns an output holds, for the tables it holds


def full_shape(tree: Tree) -> Shape:
    return {name: tree.columns(name) for name in tree.children}


def output_model(tree: Tree, shape: Shape, directives: dict[str, dict[str, ColumnDirective]] | None = None,
                 keyed: dict[str, OrderKey] | None = None):
    """(pydantic model, JSON Schema) of one output of this shape, with the generation directives applied; the
    `keyed` child tables' records as an object keyed by their order value (synth_llm.order_keys)."""
    directives = directives or {}
    for table, columns in directives.items():
        if table not in tree.children:
            raise SynthError(f"generate.directives names no table of this dataset", table=table,
                             hint=f"use one of {sorted(tree.children)}")
        unknown = [c for c in columns if c not in tree.table(table).columns]
        if unknown:
            raise SynthError("generate.directives names no modelled column", table=table, column=unknown[0],
                             hint=f"use one of {tree.columns(table)}")
    model, schema = _table_model(tree.root, tree, shape, directives, keyed or {})
    return model, schema


def _table_model(name: str, tree: Tree, shape: Shape, directives, keyed: dict[str, OrderKey]) -> tuple[type, dict]:
    fields: dict[str, Any] = {}
    properties: dict[str, dict] = {}
    table = tree.table(name)
    for column in shape.get(name, []):
        directive = directives.get(name, {}).get(column, ColumnDirective())
        try:
            rule = column_rule(table.columns[column], impute_na=directive.impute_na,
                               impute_protected=directive.impute_protected, mask=directive.mask)
        except SynthError as exc:
            raise SynthError(exc.message, dataset=tree.stats.dataset, table=name, column=column, hint=exc.hint) from None
        properties[column] = rule.schema
        # fields by position, the column name as alias: any name works ("class", "_id", "unit price")
        fields[f"f{len(fields)}"] = (Annotated[Any, AfterValidator(rule.check), WithJsonSchema(rule.schema)],
                                     Field(alias=column))
    for child in tree.children[name]:
        if not holds(child, tree, shape):
            continue
        cap = tree.max_records(child)
        rule = keyed.get(child)
        if rule is not None and rule.column in shape.get(child, []):
            item_shape = {**shape, child: [c for c in shape[child] if c != rule.column]}
            item_model, item_schema = _table_model(child, tree, item_shape, directives, keyed)
            properties[child], fields[f"f{len(fields)}"] = _keyed_records(
                item_model, item_schema, rule.keys(directives.get(child, {}).get(rule.column, ColumnDirective()).mask),
                cap, child)
            continue
        item_model, item_schema = _table_model(child, tree, shape, directives, keyed)
        array = {"type": "array", "items": item_schema, "maxItems": cap}
        properties[child] = array
        fields[f"f{len(fields)}"] = (Annotated[list[item_model], Field(max_length=cap), WithJsonSchema(array)],
                                     Field(alias=child))
    schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    model = create_model("Output", __config__=ConfigDict(extra="forbid"), **fields)
    return model, schema


def _keyed_records(item_model, item_schema: dict, keys: list[str], cap: int, child: str):
    """(JSON Schema, pydantic field) of records keyed by their order value: each key optional, in rising order,
    at most `cap` of them."""
    schema = {"type": "object", "properties": {k: item_schema for k in keys}, "additionalProperties": False,
              "maxProperties": cap}
    model = create_model("Records", __config__=ConfigDict(extra="forbid"),
                         **{f"k{i}": (item_model, Field(None, alias=k)) for i, k in enumerate(keys)})

    def at_most_cap(value):
        if len(value.model_fields_set) > cap:
            raise ValueError(f"{len(value.model_fields_set)} records, more than the longest sequence ({cap})")
        return value

    return schema, (Annotated[model, AfterValidator(at_most_cap), WithJsonSchema(schema)], Field(alias=child))


def holds(name: str, tree: Tree, shape: Shape) -> bool:
    """Whether an output holds this table: it has columns in the shape, or a descendant has."""
    return name in shape or any(holds(child, tree, shape) for child in tree.children[name])
