"""Request bodies checked against the vendored azure-rest-api-specs (swagger 2.0).

Every spec file under `azure-rest-api-specs/` registers its operations by (method, path
template, api-version); `SpecRegistry.check(method, path, api_version, body)` resolves the
operation's body schema and validates a captured request body with jsonschema. Swagger's
dialect is translated first:
- `$ref` across files (relative paths, as in the upstream repository);
- `allOf` inheritance is flattened, so `additionalProperties: false` sees inherited properties;
- `discriminator` / `x-ms-discriminator-value`: the value picks the derived definition;
- `readOnly` (or `x-ms-mutability` without create/update) properties must not be sent (so the
  definitions only they reach need not be vendored);
- `x-nullable` admits null; `required` and `enum` are enforced as written;
- a `$ref` to a definition (or file) that is not vendored is refused when the body reaches
  it: a trimmed spec may leave out the subtrees the backend never sends, and a body that
  starts sending one fails until its definition is vendored.

Adding an API is adding its (trimmed) spec file and examples: nothing here names an operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

SPEC_ROOT = Path(__file__).resolve().parent / "azure-rest-api-specs"


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str
    api_version: str
    operation_id: str
    spec_file: Path
    body: dict[str, Any] | None  # the swagger body parameter, when the operation takes one
    examples: dict[str, str]  # example title -> path relative to spec_file

    @cached_property
    def regex(self) -> re.Pattern:
        parts = re.split(r"(\{[^}]+\})", self.template)
        out = []
        for index, part in enumerate(parts):
            if part.startswith("{"):
                # A leading `{scope}`-like parameter is a whole ARM id (x-ms-skip-url-encoding).
                out.append(".+?" if index == 1 and parts[0] == "/" else "[^/]+")
            else:
                out.append(re.escape(part))
        return re.compile("^" + "".join(out) + "/?$", re.IGNORECASE)

    @property
    def label(self) -> str:
        return f"{self.operation_id} ({self.method} {self.template}, api-version {self.api_version})"


@dataclass(frozen=True)
class Violation:
    operation: str
    json_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.operation}: at {self.json_path}: {self.message}"


def _read_only(validator: Any, value: Any, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if value:
        yield ValidationError("is read-only: a request must not send it")


def _not_vendored(validator: Any, ref: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    yield ValidationError(f"its schema {ref!r} is not vendored in tests/specs (trimmed out): vendor it to "
                          "check this part of the body")


# Draft 7 treats readOnly as an annotation; a request body must not carry one.
RequestValidator = jsonschema.validators.extend(jsonschema.Draft7Validator,
                                                {"readOnly": _read_only, "notVendored": _not_vendored})


class SchemaBuilder:
    """Translates swagger definitions into one JSON Schema with `$defs` (cycle-safe)."""

    def __init__(self, registry: SpecRegistry):
        self.registry = registry
        self.defs: dict[str, Any] = {}

    def schema_for(self, node: dict[str, Any], file: Path) -> dict[str, Any]:
        root = self.convert(node, file)
        return {**root, "$defs": self.defs}

    # -- references ----------------------------------------------------------------

    def _key(self, file: Path, name: str, plain: bool) -> str:
        rel = file.resolve().relative_to(self.registry.root.resolve()).as_posix()
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{rel}.{name}") + (".plain" if plain else "")

    def ref(self, ref: str, file: Path) -> dict[str, Any]:
        if not self.registry.is_vendored(ref, file):
            return {"notVendored": ref}
        target, name = self.registry.resolve_definition(ref, file)
        descendants = self.registry.descendants(target, name)
        plain_key = self._define_plain(target, name)
        if not descendants:
            return {"$ref": f"#/$defs/{plain_key}"}
        key = self._key(target, name, plain=False)
        if key not in self.defs:
            self.defs[key] = {}
            field = self.registry.discriminator(target, name)
            choices = [(self.registry.discriminator_value(target, name), target, name), *descendants]
            self.defs[key] = {
                "required": [field],
                "properties": {field: {"enum": [value for value, _, _ in choices]}},
                "allOf": [{"if": {"properties": {field: {"const": value}}, "required": [field]},
                           "then": {"$ref": f"#/$defs/{self._define_plain(f, n)}"}}
                          for value, f, n in choices],
            }
        return {"$ref": f"#/$defs/{key}"}

    def _define_plain(self, file: Path, name: str) -> str:
        key = self._key(file, name, plain=True)
        if key in self.defs:
            return key
        self.defs[key] = {}  # placeholder: recursive definitions refer to it while it is built
        properties: dict[str, Any] = {}
        required: list[str] = []
        additional: Any = None
        for ancestor_file, ancestor in reversed(self.registry.lineage(file, name)):
            for prop, sub in ancestor.get("properties", {}).items():
                properties[prop] = self.convert(sub, ancestor_file)
            required += [r for r in ancestor.get("required", []) if r not in required]
            if "additionalProperties" in ancestor:
                additional = ancestor["additionalProperties"]
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if additional is False:
            schema["additionalProperties"] = False
        elif isinstance(additional, dict):
            schema["additionalProperties"] = self.convert(additional, file)
        definition = self.registry.definition(file, name)
        if definition.get("type") not in (None, "object") or ("enum" in definition and not properties):
            schema = self.convert({k: v for k, v in definition.items() if k != "allOf"}, file, inline=True)
        self.defs[key] = schema
        return key

    # -- nodes -----------------------------------------------------------------------

    def convert(self, node: dict[str, Any], file: Path, inline: bool = False) -> dict[str, Any]:
        mutability = node.get("x-ms-mutability")
        if node.get("readOnly") or (mutability is not None and not {"create", "update"} & set(mutability)):
            # A request must not send it, whatever its shape: its definition is not needed (nor vendored).
            return {"readOnly": True}
        out: dict[str, Any]
        if "$ref" in node:
            out = self.ref(node["$ref"], file)
        elif "allOf" in node and not inline:
            out = {"allOf": [self.convert(part, file) for part in node["allOf"]]}
        else:
            out = {}
            for keyword in ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
                            "minItems", "maxItems", "uniqueItems", "required", "const"):
                if keyword in node:
                    out[keyword] = node[keyword]
            if "items" in node:
                out["items"] = self.convert(node["items"], file)
            if "properties" in node:
                out["properties"] = {k: self.convert(v, file) for k, v in node["properties"].items()}
            if isinstance(node.get("additionalProperties"), dict):
                out["additionalProperties"] = self.convert(node["additionalProperties"], file)
            elif node.get("additionalProperties") is False:
                out["additionalProperties"] = False
        if node.get("x-nullable"):
            out = {"anyOf": [{"type": "null"}, out]}
        return out


class SpecRegistry:
    """The operations of every vendored spec file, and the means to check a body against one."""

    def __init__(self, root: Path = SPEC_ROOT):
        self.root = root
        self._documents: dict[Path, dict[str, Any]] = {}
        self.operations: list[Operation] = []
        for path in sorted(root.rglob("*.json")):
            if "examples" in path.relative_to(root).parts:
                continue
            document = self.document(path)
            if "paths" in document:
                self.operations += self._operations(path, document)

    def document(self, path: Path) -> dict[str, Any]:
        path = path.resolve()
        if path not in self._documents:
            self._documents[path] = json.loads(path.read_text())
        return self._documents[path]

    def _operations(self, path: Path, document: dict[str, Any]) -> Iterator[Operation]:
        version = document["info"]["version"]
        for template, methods in document["paths"].items():
            for method, spec in methods.items():
                if method.startswith("x-") or method == "parameters":
                    continue
                body = None
                for parameter in spec.get("parameters", []):
                    parameter = self.resolve(parameter, path)[0]
                    if parameter.get("in") == "body":
                        body = parameter
                examples = {title: ref["$ref"] for title, ref in spec.get("x-ms-examples", {}).items()}
                yield Operation(method.upper(), template, version, spec.get("operationId", method),
                                path, body, examples)

    # -- $ref resolution and inheritance -----------------------------------------------

    def resolve(self, node: dict[str, Any], file: Path) -> tuple[dict[str, Any], Path]:
        while "$ref" in node:
            target_file, pointer = self._split(node["$ref"], file)
            node = self.document(target_file)
            for part in pointer.strip("/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            file = target_file
        return node, file

    def _split(self, ref: str, file: Path) -> tuple[Path, str]:
        location, _, pointer = ref.partition("#")
        target = (file.parent / location).resolve() if location else file.resolve()
        if not target.exists():
            raise FileNotFoundError(f"{file.relative_to(self.root)}: $ref {ref!r} points to a file that is "
                                    f"not vendored ({target})")
        return target, pointer

    def resolve_definition(self, ref: str, file: Path) -> tuple[Path, str]:
        target, pointer = self._split(ref, file)
        match = re.fullmatch(r"/definitions/([^/]+)", pointer)
        if not match:
            raise ValueError(f"{ref}: only #/definitions/NAME references are supported in schemas")
        return target, match.group(1)

    def is_vendored(self, ref: str, file: Path) -> bool:
        """Whether the definition `ref` names, and every allOf ancestor of it, is in the vendored files."""
        try:
            target, name = self.resolve_definition(ref, file)
            self.lineage(target, name)
        except (FileNotFoundError, KeyError):
            return False
        return True

    def definition(self, file: Path, name: str) -> dict[str, Any]:
        return self.document(file)["definitions"][name]

    def lineage(self, file: Path, name: str) -> list[tuple[Path, dict[str, Any]]]:
        """The definition, then its allOf ancestors, depth first."""
        definition = self.definition(file, name)
        chain = [(file.resolve(), definition)]
        for part in definition.get("allOf", []):
            if "$ref" in part:
                chain += self.lineage(*self.resolve_definition(part["$ref"], file))
            else:
                chain.append((file.resolve(), part))
        return chain

    def _parents(self, file: Path, name: str) -> list[tuple[Path, str]]:
        return [self.resolve_definition(part["$ref"], file)
                for part in self.definition(file, name).get("allOf", []) if "$ref" in part]

    def descendants(self, file: Path, name: str) -> list[tuple[str, Path, str]]:
        """(discriminator value, file, name) of every definition deriving from this one."""
        file = file.resolve()
        found = []
        for candidate in self.document(file).get("definitions", {}):
            if candidate != name and self._derives(file, candidate, (file, name)):
                found.append((self.discriminator_value(file, candidate), file, candidate))
        return found if self.discriminator(file, name) else []

    def _derives(self, file: Path, name: str, base: tuple[Path, str]) -> bool:
        return any(parent == base or self._derives(*parent, base) for parent in self._parents(file, name))

    def discriminator(self, file: Path, name: str) -> str | None:
        for _, definition in self.lineage(file, name):
            if "discriminator" in definition:
                return definition["discriminator"]
        return None

    def discriminator_value(self, file: Path, name: str) -> str:
        return self.definition(file, name).get("x-ms-discriminator-value", name)

    # -- what callers ask --------------------------------------------------------------

    def find(self, method: str, path: str) -> list[Operation]:
        return [op for op in self.operations if op.method == method.upper() and op.regex.match(path)]

    def operation(self, method: str, path: str, api_version: str | None) -> Operation | None:
        return next((op for op in self.find(method, path) if op.api_version == api_version), None)

    def body_schema(self, operation: Operation) -> dict[str, Any]:
        assert operation.body is not None, operation.label
        return SchemaBuilder(self).schema_for(operation.body["schema"], operation.spec_file)

    def check(self, operation: Operation, body: Any) -> list[Violation]:
        """Every way `body` breaks the operation's body schema (empty when it conforms)."""
        if operation.body is None:
            if body in (None, b"", ""):
                return []
            return [Violation(operation.label, "$", "the operation takes no request body")]
        if body in (None, b"", ""):
            if operation.body.get("required"):
                return [Violation(operation.label, "$", "a request body is required")]
            return []
        validator = RequestValidator(self.body_schema(operation))
        violations = []
        for error in validator.iter_errors(body):
            error = _explain(error)
            violations.append(Violation(operation.label, _json_path(error), error.message))
        return violations

    def examples(self) -> Iterator[tuple[Operation, str, dict[str, Any]]]:
        """(operation, example title, example document) for every x-ms-examples entry."""
        for operation in self.operations:
            for title, relative in operation.examples.items():
                yield operation, title, json.loads((operation.spec_file.parent / relative).read_text())

    def example_body(self, operation: Operation, example: dict[str, Any]) -> Any:
        assert operation.body is not None, operation.label
        return example["parameters"][operation.body["name"]]


def _explain(error: ValidationError) -> ValidationError:
    """The most specific cause; for x-nullable's anyOf on a non-null value, the cause in the value's schema."""
    if not error.context:
        return error
    causes = error.context
    if error.validator == "anyOf" and error.instance is not None:
        # Branch 0 is {"type": "null"} (SchemaBuilder.convert): it is not why a non-null value failed.
        causes = [c for c in causes if c.relative_schema_path and c.relative_schema_path[0] != 0] or causes
    return _explain(best_match(causes))


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
