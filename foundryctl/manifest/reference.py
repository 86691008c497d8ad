"""docs/manifest-reference.md, generated from the same models as the JSON Schema.

Regenerate after changing a kind, a backend config or the manifest's blocks:

    python -m foundryctl.manifest.reference > docs/manifest-reference.md

(or `foundryctl schema --markdown --output docs/manifest-reference.md`); a test fails while
the committed file differs from what this prints.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

# def name -> Markdown link(s) to the section(s) that document it
Links = dict[str, str]
REGENERATE = "python -m foundryctl.manifest.reference > docs/manifest-reference.md"
# Field names whose meaning is the same everywhere, for fields the models leave undescribed.
_GENERIC = {"description": "Free-text description.", "kind": "The resource's kind."}


def manifest_reference() -> str:
    """The whole reference as Markdown."""
    from foundryctl.backends import BACKEND_CONFIGS
    from foundryctl.kinds import KINDS, Ref
    from foundryctl.manifest.json_schema import manifest_json_schema, schema_models

    schema = manifest_json_schema(interpolation=False)
    defs: dict[str, Any] = schema["$defs"]
    models = schema_models()
    # The top-level blocks: one section per model, or per branch of a union (state: sqlite, ...).
    blocks = {"backend": [m.__name__ for m in BACKEND_CONFIGS.values()],
              "state": _branches(defs, "StateConfig"), "variables": ["VariableSpec"]}
    titles = {name: f"{key}: {_type_const(defs[name])}" if key == "backend" or len(names) > 1 else key
              for key, names in blocks.items() for name in names}
    titles.update({kind.spec.__name__: kind.name for kind in KINDS.values()})
    titles.update({name: name for name in defs if name in models and name not in titles})
    links = {name: f"[{title}](#{_slug(title)})" for name, title in titles.items()}
    links["StateConfig"] = " or ".join(links[name] for name in blocks["state"])
    links["Resource"] = "[resource of one of the kinds](#kinds)"
    out = [
        "# Manifest reference",
        "",
        (f"<!-- Generated from the pydantic models by `{REGENERATE}`"
         " (or `foundryctl schema --markdown`); do not edit by hand. -->"),
        "",
        "Every key a manifest accepts, with its type, default and allowed values: the rules",
        "`foundryctl validate` checks first. Variables, interpolation, dependencies and the meaning",
        "of each kind are explained in [manifest.md](manifest.md); `foundryctl schema` prints the",
        "same information as a JSON Schema for editors.",
        "",
        "Any value in `backend`, `state` and `resources` except `kind` may also be written as",
        "`${var.NAME}` or `${env.NAME}` (resolved before these checks; a whole-value reference",
        "keeps the variable's type).",
        "Unknown keys are errors.",
        "",
        "## Top-level keys",
        "",
        *_table(schema, set(), None, defs, links),
        "",
    ]
    intros = {"VariableSpec": (
        "Each entry of `variables` is `NAME: DEFAULT` (a scalar or a list is its own default) or "
        "this long form. Names are letters, digits and `_`, not starting with a digit.")}
    intros.update({m.__name__: f"The `backend` block with `type: {name}`."
                   for name, m in BACKEND_CONFIGS.items()})
    documented = {"StateConfig"}
    for names in blocks.values():
        for name in names:
            out += _section(titles[name], name, defs, models, links, level=2, intro=intros.get(name, ""))
            documented.add(name)
    out += ["## Kinds", ""]
    for kind in KINDS.values():
        spec_name = kind.spec.__name__
        notes = []
        if kind.create_before_destroy:
            notes.append("A replacement is created before the old object is destroyed.")
        out += _section(kind.name, spec_name, defs, models, links, level=3, intro=kind.summary,
                        notes=notes, force_new=set(kind.force_new), ref_type=Ref)
        documented.add(spec_name)
    out += ["## Blocks", "", "Nested blocks that kinds and the backend use.", ""]
    for name in sorted(defs):
        if name in models and name not in documented:
            out += _section(name, name, defs, models, links, level=3, ref_type=Ref)
    return "\n".join(out).rstrip("\n") + "\n"


def _branches(defs: dict[str, Any], name: str) -> list[str]:
    """The models of a union's branches (`oneOf` of `$ref`s), or the model itself."""
    branches = defs[name].get("oneOf", [])
    refs = [b["$ref"].rsplit("/", 1)[-1] for b in branches if "$ref" in b]
    return refs if refs and len(refs) == len(branches) else [name]


def _type_const(schema: dict[str, Any]) -> str:
    """The `type: X` a block's model is selected by."""
    kind = schema.get("properties", {}).get("type", {})
    return str(kind.get("const", (kind.get("enum") or ["?"])[0]))


def _section(title: str, def_name: str, defs: dict[str, Any], models: dict[str, type[BaseModel]],
             links: Links, *, level: int, intro: str = "", notes: list[str] | None = None,
             force_new: set[str] | None = None, ref_type: type | None = None) -> list[str]:
    schema = defs[def_name]
    out = [f"{'#' * level} {title}", ""]
    text = intro or schema.get("description", "")
    if text:
        out += [text, ""]
    forms = [b for b in schema.get("anyOf", []) if "properties" not in b]
    for form in forms:  # extra spellings (Scope's `resource_group`)
        out += [f"Also written as `{json.dumps(form.get('const'))}`: {form.get('description', '')}", ""]
    body = next((b for b in schema.get("anyOf", []) if "properties" in b), schema)
    out += _table(body, force_new or set(), _refs(models.get(def_name), ref_type), defs, links)
    out.append("")
    for note in notes or []:
        out += [note, ""]
    return out


def _refs(model: type[BaseModel] | None, ref_type: type | None) -> dict[str, Any]:
    """field -> its Ref metadata (the field names another resource)."""
    if model is None or ref_type is None:
        return {}
    return {name: next(m for m in info.metadata if isinstance(m, ref_type))
            for name, info in model.model_fields.items()
            if any(isinstance(m, ref_type) for m in info.metadata)}


def _table(schema: dict[str, Any], force_new: set[str], refs: dict[str, Any] | None,
           defs: dict[str, Any], links: Links) -> list[str]:
    rows = ["| field | type and allowed values | required | default | description |",
            "|---|---|---|---|---|"]
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        description = prop.get("description") or _described_ref(prop, defs) or _GENERIC.get(name, "")
        extra = []
        ref = (refs or {}).get(name)
        if ref is not None:
            extra.append(f"Names a {ref.kind}" + (" (containment: replaced with it)" if ref.containment else "")
                         + ".")
        if name in force_new:
            extra.append("Forces replacement.")
        text = " ".join(part for part in [description, *extra] if part)
        default = "" if name in required or "default" not in prop else _default(prop["default"], prop)
        rows.append(f"| `{name}` | {_cell(_type(prop, links))} | {'yes' if name in required else 'no'} | "
                    f"{_cell(default)} | {_cell(text)} |")
    return rows


def _described_ref(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    ref = prop.get("$ref")
    return defs.get(ref.rsplit("/", 1)[-1], {}).get("description", "") if ref else ""


def _type(schema: dict[str, Any], links: Links) -> str:
    """'integer, ≥ 1, ≤ 10', 'one of `a`, `b`', 'list of string', '[Block](#block)'."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return links.get(name, f"[{name}](#{_slug(name)})")
    if "anyOf" in schema or "oneOf" in schema:
        branches = [b for b in schema.get("anyOf", schema.get("oneOf", [])) if b.get("type") != "null"]
        values = [v for b in branches for v in _literals(b)]
        if values and len(values) == sum(len(_literals(b)) for b in branches) and all(
                _literals(b) for b in branches):
            return _one_of(values)
        return " or ".join(_type(b, links) for b in branches)
    literals = _literals(schema)
    if literals:
        return _one_of(literals)
    kind = schema.get("type")
    if isinstance(kind, list):  # ["array", "null"]: null only means "may be left empty"
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != 1:
            return " or ".join(kinds)
        kind = kinds[0]
    if kind == "array":
        text = f"list of {_type(schema.get('items', {}), links)}"
        if "minItems" in schema:
            text += f", at least {schema['minItems']}"
        return text
    if kind == "object" and "additionalProperties" not in schema and "properties" not in schema:
        return "mapping"
    if kind == "object" or "additionalProperties" in schema:
        keys = schema.get("propertyNames", {})
        key_text = _one_of(keys["enum"]) if "enum" in keys else "string"
        values = schema.get("additionalProperties")
        return f"map of {key_text} to {_type(values, links) if isinstance(values, dict) else 'any'}"
    if kind is None:
        return "any"
    return kind + _constraints(schema)


def _literals(schema: dict[str, Any]) -> list[Any]:
    if "const" in schema:
        return [schema["const"]]
    return list(schema.get("enum", []))


def _one_of(values: list[Any]) -> str:
    shown = ", ".join(f"`{v if isinstance(v, str) else json.dumps(v)}`" for v in values)
    return shown if len(values) == 1 else f"one of {shown}"


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    for key, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                        ("exclusiveMaximum", "<")):
        if key in schema:
            parts.append(f"{symbol} {_number(schema[key])}")
    if "minLength" in schema:
        parts.append(f"at least {schema['minLength']} character(s)")
    if "maxLength" in schema:
        parts.append(f"at most {schema['maxLength']} characters")
    if "pattern" in schema:
        parts.append(f"matching `{schema['pattern']}`")
    return (", " + ", ".join(parts)) if parts else ""


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _default(value: Any, prop: dict[str, Any]) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict) and value and ("$ref" in prop or "anyOf" in prop):
        return "its fields' defaults"
    return f"`{json.dumps(value)}`"


def _slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _cell(text: str) -> str:
    """Table cells are one line and must not end the row early."""
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    print(manifest_reference(), end="")
