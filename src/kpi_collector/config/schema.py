"""The JSON Schema of `kpi.yaml` (draft 2020-12), built from the config models and every
source and destination type installed (entry points and `register_*`): what `kpi schema`
prints for editors (yaml-language-server and others that read JSON Schema).

Each `sources:` / `destinations:` item is checked against the model of its `type` through
`if`/`then`, so an editor completes the keys of the type written.
"""

from __future__ import annotations

from typing import Any

from kpi_collector.config.models import Settings
from kpi_collector.config.plugins import (
    DESTINATION_GROUP,
    SOURCE_GROUP,
    destination_type,
    names,
    source_type,
)
from kpi_collector.errors import ConfigError

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    """The schema as a dict: `{"$schema": ..., "type": "object", "properties": {...},
    "$defs": {...}}`. A plugin whose model cannot be written as JSON Schema (a field of a
    Python type), or that fails to load (its module gone or broken: a config using it says
    so), is described as an object with its `type`, and nothing more."""
    schema = Settings.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    for key, group, load in (
        ("sources", SOURCE_GROUP, source_type),
        ("destinations", DESTINATION_GROUP, destination_type),
    ):
        kinds = names(group)
        rules = []
        for kind in kinds:
            ref = f"{key}.{kind}"
            try:
                cls = load(kind)
            except ConfigError:  # a broken plugin: the others' schema still serves editors
                defs[ref] = {"type": "object", "properties": {"type": {"const": kind}}}
            else:
                defs[ref] = _plugin_schema(cls, ref, kind, defs)
            rules.append(
                {
                    "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
                    "then": {"$ref": f"#/$defs/{ref}"},
                }
            )
        schema["properties"][key] = {
            "type": "array",
            "description": f"the {key}; each item's `type` picks its keys",
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": kinds}},
                "allOf": rules,
            },
        }
    schema["title"] = "kpi.yaml"
    loaded = _as_loaded({"$schema": DIALECT, **schema, "$defs": defs})
    for key in ("sources", "destinations"):  # an entry's `type` is written as it is
        loaded["properties"][key]["items"]["properties"]["type"] = schema["properties"][key][
            "items"
        ]["properties"]["type"]
    return dict(loaded)


_NAME = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"  # the loader's `${NAME}`, `${NAME:-default}`
_DIGITS = r"[\s+\-.0-9eE_]"  # what a number written as text may hold around a variable
#: a text the loader reads as a number or a boolean (pydantic's lax mode, after `${NAME}`
#: is read): `"30"`, `${T}`, `${T:-30}`, `1${ZEROS}` (a digit or a variable: not `""`);
#: `on`, `Yes`, `0` for a boolean
_AS_TEXT = {
    "number": rf"^(?=.*[0-9}}]){_DIGITS}*({_NAME}{_DIGITS}*)*$",
    "integer": rf"^(?=.*[0-9}}]){_DIGITS}*({_NAME}{_DIGITS}*)*$",
    "boolean": "^\\s*({}|{})\\s*$".format(
        _NAME,
        "|".join(
            "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)
            for word in ("true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0")
        ),
    ),
}


def _as_loaded(node: Any) -> Any:
    """`node` with every number, boolean and choice of texts also taken as the text the
    loader takes for it: `timeout: ${T}`, `enabled: ${ON:-false}`, `every: ${E:-day}` (a
    variable, read before the models check the value), and for a boolean the integers 0 and 1 (`count: 1`), as pydantic's lax mode
    reads them (its `bool` also takes `"yes"`, `"off"`...). The schema said `'${T}' is not
    of type 'number'` in an editor for a config `kpi validate` accepts."""
    if isinstance(node, list):
        return [_as_loaded(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _as_loaded(value) for key, value in node.items()}
    enum = node.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        # `every: ${EVERY:-day}`: the loader checks the text the variable gives
        outer = {k: node.pop(k) for k in ("title", "description", "default") if k in node}
        return {**outer, "anyOf": [node, {"type": "string", "pattern": _NAME}]}
    kind = node.get("type")
    if not isinstance(kind, str) or kind not in _AS_TEXT:  # a property named `type`: a dict
        return node
    outer = {k: node.pop(k) for k in ("title", "description", "default") if k in node}
    forms: list[dict[str, Any]] = [node, {"type": "string", "pattern": _AS_TEXT[kind]}]
    if kind == "boolean":
        forms.insert(1, {"enum": [0, 1]})
    return {**outer, "anyOf": forms}


def _plugin_schema(cls: Any, ref: str, kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    from pydantic.errors import PydanticInvalidForJsonSchema

    try:
        own = cls.model_json_schema(ref_template=f"#/$defs/{ref}.{{model}}")
    except (PydanticInvalidForJsonSchema, TypeError, ValueError):
        return {"type": "object", "properties": {"type": {"const": kind}}}
    for name, sub in own.pop("$defs", {}).items():
        defs[f"{ref}.{name}"] = sub
    metrics = own.get("properties", {}).get("metrics", {})
    if isinstance(metrics.get("additionalProperties"), dict):
        # `posts: "a.post"` is short for the type's default extractor (`css:`, `jmespath:`...)
        metrics["additionalProperties"] = {
            "anyOf": [
                metrics["additionalProperties"],
                {"type": "string", "description": "the selector, expression or query"},
            ]
        }
    own.setdefault("properties", {})["type"] = {"const": kind}
    own["required"] = sorted({"type", *own.get("required", [])})
    own["title"] = f"{kind}"
    if cls.__doc__:
        own["description"] = " ".join(cls.__doc__.split())
    return dict(own)
