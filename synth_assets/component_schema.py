"""The `SynthDataset` component's schema for `dg`: every key of a dataset, with its type, default and meaning,
mirrored from the project file's pydantic models (synth_assets.config), so that `dg utils inspect-component`
and an editor list them.

The mirror documents; it does not judge. Its leaves accept any value and its sections any extra key, because
`dg check defs` checks a schema with jsonschema, whose errors name the section ("attributes.quality {...} is not
valid under any of the given schemas"), not the key. The component then parses its attributes with the real
models, whose errors name the very key (`attributes.quality.max_dcr_share: Input should be ...`).
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model


@cache
def described(model: type[BaseModel]) -> type[BaseModel]:
    """A model with `model`'s keys, defaults and descriptions (each headed by its type), whose values are not
    checked; nested models are mirrored too, so that their keys are listed."""
    fields = {}
    for name, field in model.model_fields.items():
        default = ({"default_factory": field.default_factory} if field.default_factory is not None
                   else {} if field.is_required() else {"default": field.default})
        what = f"({type_name(field.annotation)}) {field.description or ''}".strip()
        fields[name] = (_mirrored(field.annotation), Field(description=what, **default))
    return create_model(f"{model.__name__}Schema", __config__=ConfigDict(extra="allow"), __doc__=model.__doc__,
                        **fields)


def _mirrored(annotation: Any) -> Any:
    """Models inside `annotation` (also in lists, mappings and optionals) mirrored; any other value: Any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return described(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args and _holds_a_model(args[0]):
        return list[_mirrored(args[0])]
    if origin is dict and len(args) == 2 and _holds_a_model(args[1]):
        return dict[str, _mirrored(args[1])]
    if origin in (typing.Union, types.UnionType) and any(_holds_a_model(arg) for arg in args):
        return typing.Union[tuple(_mirrored(arg) for arg in args)]
    return Any


def _holds_a_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_a_model(arg) for arg in typing.get_args(annotation))


def type_name(annotation: Any) -> str:
    """`float | None` -> 'number or null', `list[str]` -> 'list of string', a model -> 'mapping'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "mapping"
    return {int: "integer", float: "number", str: "string", bool: "true or false", type(None): "null",
            Any: "any"}.get(annotation, getattr(annotation, "__name__", str(annotation)))
