"""The manifest's JSON Schema, generated from the same pydantic models the loader validates with.

Editors use it through `# yaml-language-server: $schema=...`; `foundryctl schema` prints it.
The schema is a helper, not the authority: rules that need the catalog, the whole manifest or
the data files (regions, roles, references, dataset content) are `foundryctl validate`'s.

Values may be written as `${var.NAME}` / `${env.NAME}` and are resolved before validation, so
every constrained value (a number, a boolean, an enum, a pattern, a nested block) also accepts
an interpolated string.
"""

from __future__ import annotations

import copy
from typing import Any, get_args

from pydantic import BaseModel

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# A name, not a location: teams host the file where their editors can read it (docs/gitops.md).
SCHEMA_ID = "urn:foundryctl:manifest:1"
INTERPOLATION = "Interpolation"
INTERPOLATED_STRING = "InterpolatedString"
_REF = "#/$defs/{model}"
# Keywords that can reject a string such as "${var.level}".
_STRING_CONSTRAINTS = ("pattern", "enum", "const", "format", "maxLength")
# Keys that only annotate a schema; they stay outside the anyOf that adds interpolation.
_ANNOTATIONS = ("title", "description", "default", "examples", "deprecated")
# Blocks the loader reads before interpolating: their values are taken literally.
_LITERAL_DEFS = ("VariableSpec",)
# Top-level blocks whose models live with the modules that read them (their short forms are
# `mode="before"` validators the schema cannot express): left open here, checked by validate.
_BLOCK_DOCS = {"prices": "docs/cost.md", "policies": "docs/policies.md"}
# Spellings a `mode="before"` validator accepts, which pydantic cannot see.
_EXTRA_FORMS: dict[str, list[dict[str, Any]]] = {
    "Scope": [{"const": "resource_group", "description": "Shorthand for {resource_group: true}."}],
}


def manifest_json_schema(*, interpolation: bool = True) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one manifest file.

    `interpolation=False` leaves out the `${...}` alternatives (the reference docs use that).
    """
    from pydantic.json_schema import models_json_schema

    from foundryctl.backends import BACKEND_CONFIGS
    from foundryctl.kinds import KINDS
    from foundryctl.manifest.schema import SUPPORTED_VERSIONS, TOP_LEVEL_KEYS

    kinds = list(KINDS.values())
    models = top_models()
    refs, generated = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    defs: dict[str, Any] = generated["$defs"]
    _add_factory_defaults(models, defs)
    for kind in kinds:
        name = _def_name(refs[(kind.spec, "validation")])
        defs[name]["description"] = kind.summary or defs[name].get("description", "")
    _drop_field_titles(defs)
    for name, forms in _EXTRA_FORMS.items():
        if name in defs:
            core = defs[name]
            defs[name] = {**_annotations(core), "anyOf": [_without_annotations(core), *forms]}

    kind_refs = {kind.name: refs[(kind.spec, "validation")]["$ref"] for kind in kinds}
    defs["Resource"] = {
        "title": "Resource",
        "description": "One resource: `kind` selects its fields. Kinds: " + ", ".join(kind_refs) + ".",
        "type": "object",
        "required": ["kind", "name"],
        "properties": {"kind": {"enum": list(kind_refs), "description": "The resource's kind."}},
        "oneOf": [{"$ref": ref} for ref in kind_refs.values()],
        "discriminator": {"propertyName": "kind", "mapping": kind_refs},
    }
    backend_refs = [refs[(m, "validation")] for m in BACKEND_CONFIGS.values()]
    backend = backend_refs[0] if len(backend_refs) == 1 else {"oneOf": backend_refs}
    variable_value = {"anyOf": [
        {"$ref": _REF.format(model="VariableSpec")},
        {"type": ["string", "number", "boolean", "array", "null"],
         "description": "Short form: the value is the default (a map default needs the long form)."},
    ]}
    properties: dict[str, Any] = {
        "version": {"enum": list(SUPPORTED_VERSIONS), "description": (
            "Manifest format version; required in at least one file of a manifest directory.")},
        "backend": {**backend, "description": "Where resources live (default: {type: local})."},
        "state": {"$ref": _REF.format(model="StateConfig"),
                  "description": "Where foundryctl keeps state for this manifest."},
        "variables": {
            "type": ["object", "null"],
            "description": "Inputs: NAME: DEFAULT, or NAME: {default, description, type}.",
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": variable_value,
        },
        "resources": {"type": ["array", "null"], "description": "The resources to manage.",
                      "items": {"$ref": _REF.format(model="Resource")}},
    }
    for key in TOP_LEVEL_KEYS:  # blocks other modules read (prices, policies): open here
        properties.setdefault(key, {"type": ["object", "null"], "description": (
            f"The `{key}:` block; `foundryctl validate` checks its content "
            f"(see {_BLOCK_DOCS.get(key, 'docs/')}).")})
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "foundryctl manifest",
        "description": ("A foundryctl manifest: the backend, the state file, variables and the "
                        "resources to manage. See docs/manifest.md."),
        "type": "object",
        "additionalProperties": False,
        "properties": {key: properties[key] for key in TOP_LEVEL_KEYS},
        "$defs": dict(sorted(defs.items())),
    }
    if interpolation:
        _allow_interpolation(schema)
        # A whole backend block from a variable: one manifest, a --var-file per backend.
        block = schema["properties"]["backend"]
        schema["properties"]["backend"] = {**_annotations(block), "anyOf": [
            _without_annotations(block), {"$ref": _REF.format(model=INTERPOLATION)}]}
    return schema


# -- generation helpers --------------------------------------------------------------------


def top_models() -> list[type[BaseModel]]:
    """The models the schema is made of: every kind's spec, the backends, state, variables."""
    from foundryctl.backends import BACKEND_CONFIGS
    from foundryctl.kinds import KINDS
    from foundryctl.manifest.schema import StateConfig, VariableSpec

    return [k.spec for k in KINDS.values()] + list(BACKEND_CONFIGS.values()) + [StateConfig, VariableSpec]


def schema_models() -> dict[str, type[BaseModel]]:
    """Every model in the schema (nested ones too) by its `$defs` name."""
    return {m.__name__: m for m in _models_below(top_models())}


def _def_name(ref: dict[str, str]) -> str:
    return ref["$ref"].rsplit("/", 1)[-1]


def _models_below(models: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """`models` and every model their fields hold, each once."""
    seen: list[type[BaseModel]] = []
    todo = list(models)
    while todo:
        model = todo.pop()
        if model not in seen:
            seen.append(model)
            todo.extend(m for info in model.model_fields.values() for m in _models_in(info.annotation))
    return seen


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _add_factory_defaults(models: list[type[BaseModel]], defs: dict[str, Any]) -> None:
    """pydantic leaves out defaults made by a factory ([], {}, a nested block): add them."""
    for model in _models_below(models):
        properties = defs.get(model.__name__, {}).get("properties", {})
        for field_name, info in model.model_fields.items():
            prop = properties.get(info.alias or field_name)
            if info.default_factory is None or prop is None:
                continue
            value = info.default_factory()  # type: ignore[call-arg]
            prop["default"] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _drop_field_titles(defs: dict[str, Any]) -> None:
    """pydantic titles fields after their names ('Depends On'): noise in an editor's hover."""
    for schema in defs.values():
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)


def _annotations(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k in _ANNOTATIONS}


def _without_annotations(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in _ANNOTATIONS}


# -- interpolation -------------------------------------------------------------------------


def _allow_interpolation(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    for name, definition in defs.items():
        if name in _LITERAL_DEFS or name == "Resource":
            continue
        _object_values(definition)
    defs[INTERPOLATION] = {
        "type": "string", "pattern": r"^\$\{[^}]+\}$",
        "description": "A whole value taken from ${var.NAME} or ${env.NAME}, with its type.",
    }
    defs[INTERPOLATED_STRING] = {
        "type": "string", "pattern": r"\$\{[^}]+\}",
        "description": "A string with ${var.NAME} or ${env.NAME} inside, checked once resolved.",
    }


def _object_values(definition: dict[str, Any]) -> None:
    """Let every property value of an object schema (not `kind`: the loader reads it as
    written to pick the kind) be interpolated."""
    for branch in definition.get("anyOf", []):
        _object_values(branch)
    properties = definition.get("properties", {})
    for name in list(properties):
        if name != "kind":
            properties[name] = _value(properties[name])


def _value(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, also accepting an interpolated string where it would reject one."""
    schema = _containers(copy.deepcopy(schema))
    branches = schema.get("anyOf", [schema])
    if any(_accepts_any_string(b) for b in branches):
        return schema
    alternative = _alternative_for(branches)
    if "anyOf" in schema:
        schema["anyOf"].append(alternative)
        return schema
    return {**_annotations(schema), "anyOf": [_without_annotations(schema), alternative]}


def _containers(schema: dict[str, Any]) -> dict[str, Any]:
    """Interpolation inside a list's items and a map's values (and those of each branch)."""
    for branch in schema.get("anyOf", []):
        _containers(branch)
    if isinstance(schema.get("items"), dict):
        schema["items"] = _value(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _value(schema["additionalProperties"])
    return schema


def _accepts_any_string(schema: dict[str, Any]) -> bool:
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    return is_string and not any(k in schema for k in _STRING_CONSTRAINTS)


def _alternative_for(branches: list[dict[str, Any]]) -> dict[str, str]:
    """A constrained string may hold a reference inside it ('${var.env}-model'); any other
    value only as a whole (`epochs: ${var.epochs}`)."""
    stringy = any(b.get("type") == "string" or isinstance(b.get("const"), str)
                  or any(isinstance(v, str) for v in b.get("enum", ())) for b in branches)
    return {"$ref": _REF.format(model=INTERPOLATED_STRING if stringy else INTERPOLATION)}


if __name__ == "__main__":  # python -m foundryctl.manifest.json_schema > manifest.schema.json
    import json

    print(json.dumps(manifest_json_schema(), indent=2))
