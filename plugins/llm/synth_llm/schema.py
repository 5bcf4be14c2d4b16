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
from synth_llm.samples import Tree

Shape = dict[str, list[str]]  # table -> the columns an output holds, for the tables it holds


def full_shape(tree: Tree) -> Shape:
    return {name: tree.columns(name) for name in tree.children}


def output_model(tree: Tree, shape: Shape, directives: dict[str, dict[str, ColumnDirective]] | None = None):
    """(pydantic model, JSON Schema) of one output of this shape, with the generation directives applied."""
    directives = directives or {}
    for table, columns in directives.items():
        if table not in tree.children:
            raise SynthError(f"generate.directives names no table of this dataset", table=table,
                             hint=f"use one of {sorted(tree.children)}")
        unknown = [c for c in columns if c not in tree.table(table).columns]
        if unknown:
            raise SynthError("generate.directives names no modelled column", table=table, column=unknown[0],
                             hint=f"use one of {tree.columns(table)}")
    model, schema = _table_model(tree.root, tree, shape, directives)
    return model, schema


def _table_model(name: str, tree: Tree, shape: Shape, directives) -> tuple[type, dict]:
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
        item_model, item_schema = _table_model(child, tree, shape, directives)
        cap = tree.max_records(child)
        array = {"type": "array", "items": item_schema, "maxItems": cap}
        properties[child] = array
        fields[f"f{len(fields)}"] = (Annotated[list[item_model], Field(max_length=cap), WithJsonSchema(array)],
                                     Field(alias=child))
    schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    model = create_model("Output", __config__=ConfigDict(extra="forbid"), **fields)
    return model, schema


def holds(name: str, tree: Tree, shape: Shape) -> bool:
    """Whether an output holds this table: it has columns in the shape, or a descendant has."""
    return name in shape or any(holds(child, tree, shape) for child in tree.children[name])
