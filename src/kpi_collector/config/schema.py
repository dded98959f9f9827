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
    return {"$schema": DIALECT, **schema, "$defs": defs}


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
