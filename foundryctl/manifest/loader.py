"""Manifest files -> Manifest: parse, merge, resolve variables, validate, build the graph.

Every problem is collected, not raised on first sight, so one run reports them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from foundryctl.backends import BACKEND_CONFIGS
from foundryctl.errors import Diagnostic, ManifestError, Position
from foundryctl.graph import Graph, build_graph
from foundryctl.kinds import KINDS
from foundryctl.manifest.interpolate import Interpolator
from foundryctl.manifest.model import Manifest, ResourceDecl
from foundryctl.manifest.pydantic_errors import validation_diagnostics
from foundryctl.manifest.schema import (
    STATE_CONFIGS,
    SUPPORTED_VERSIONS,
    TOP_LEVEL_KEYS,
    StateConfig,
    VariableSpec,
    coerce_variable,
)
from foundryctl.manifest.yamlsource import SourceDocument, ValueBudget, load_yaml_documents
from foundryctl.sensitive import Secrets
from foundryctl.suggest import did_you_mean

_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "map": lambda v: isinstance(v, dict),
}
MAX_FILE_BYTES = 16 * 1024 * 1024  # per manifest or variable file; large manifests are well under 1 MiB


def load_manifest(
    path: str | os.PathLike = ".",
    *,
    variables: Mapping[str, Any] | None = None,
    var_files: Sequence[str | os.PathLike] = (),
    env: Mapping[str, str] | None = None,
    check_files: bool = True,
) -> Manifest:
    """Load a manifest file or directory; raises ManifestError listing every problem.

    `check_files=False` skips checking the content of files resources name (datasets):
    destroying, refreshing or inspecting state must work after a data file is gone.
    """
    loader = _Loader(env if env is not None else os.environ)
    loader.check_files = check_files
    return loader.load(Path(path), variables or {}, var_files)


def _address_at(doc: SourceDocument, path: tuple) -> str | None:
    """The address of the resource that `path` lies in, if it is in one and has kind and name."""
    if len(path) < 3 or path[0] != "resources" or not isinstance(doc.data, dict):
        return None
    try:
        raw = doc.data["resources"][path[1]]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(raw, dict) and isinstance(raw.get("kind"), str) and isinstance(raw.get("name"), str):
        return f"{raw['kind']}.{raw['name']}"
    return None


def _redacted(diagnostic: Diagnostic, secrets: Secrets) -> Diagnostic:
    return replace(diagnostic, message=secrets.redact_text(diagnostic.message),
                   hint=secrets.redact_text(diagnostic.hint) if diagnostic.hint else diagnostic.hint)


def display_path(path: Path) -> str:
    """Paths in messages: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def manifest_files(path: Path) -> tuple[list[Path], Path]:
    """The YAML files a path stands for, and the directory relative paths resolve from.

    A directory's YAML files that are plainly not manifest files (a `.pre-commit-hooks.yaml`
    at a repository root) are skipped, as Terraform skips files that are not `.tf`.
    """
    if path.is_dir():
        return [p for p in _yaml_files(path) if _why_not_manifest(p) is None], path
    return [path], path.parent


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _why_not_manifest(file: Path) -> str | None:
    """Why a YAML file in a manifest directory is not part of the manifest, or None if it may be:
    it parses and no document is a mapping with a manifest's top-level key (version, resources...).
    A file that does not parse is kept, so that a broken manifest file is reported, not ignored."""
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(file.read_bytes().decode("utf-8-sig")) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return None
    if not documents:
        return "it is empty"
    if any(isinstance(d, dict) and any(key in d for key in TOP_LEVEL_KEYS) for d in documents):
        return None
    shapes = {type(d).__name__ for d in documents}
    if shapes != {"dict"}:
        return f"it is a YAML {', '.join(sorted(shapes - {'dict'}) or shapes)}, not a mapping"
    return "it has no top-level key of a manifest, such as version or resources"


@dataclass
class _Variable:
    spec: VariableSpec
    has_default: bool
    source: SourceDocument
    path: tuple


class _Loader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.diagnostics: list[Diagnostic] = []
        self.invalid_addresses: set[str] = set()  # declared, but failed validation
        self.root = Path(".")
        self.check_files = True
        self.budget = ValueBudget()  # shared by every manifest and variable file of this load

    def error(self, message: str, position: Position | None = None, address: str | None = None,
              code: str = "manifest", hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic.error(message, position, address, code, hint))

    # -- files ---------------------------------------------------------------------------

    def _read_documents(self, files: Iterable[Path]) -> list[SourceDocument]:
        documents = []
        for file in files:
            if self.budget.used > self.budget.limit:
                break  # over the value limit: said once, at the file that passed it
            shown = display_path(file)
            try:
                size = file.stat().st_size
                if size > MAX_FILE_BYTES:
                    self.error(f"the file is {size / 2**20:,.1f} MiB; manifest and variable files are "
                               f"limited to {MAX_FILE_BYTES // 2**20} MiB", Position(shown, 1, 1),
                               code="too-large")
                    continue
                text = file.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                self.error(f"not valid UTF-8 (byte {exc.start})", Position(shown, 1, 1), code="encoding")
                continue
            except OSError as exc:
                self.error(f"cannot read file: {exc.strerror}", Position(shown, 1, 1), code="io")
                continue
            docs, problems = load_yaml_documents(text, shown, self.budget)
            self.diagnostics.extend(problems)
            for doc in docs:
                for path, position, first_line in doc.duplicate_keys:
                    self.error(f"duplicate key {path[-1]!r} (first defined at line {first_line})",
                               position, _address_at(doc, path), code="duplicate-key")
            documents.extend(docs)
        return documents

    def load(self, path: Path, cli_vars: Mapping[str, Any], var_files: Sequence[str | os.PathLike]) -> Manifest:
        if not path.exists():
            raise ManifestError([Diagnostic.error(f"no such manifest file or directory: {path}",
                                                  code="io")])
        files, root = manifest_files(path)
        self.root = root
        if not files:
            skipped = [f"{display_path(f)} ({_why_not_manifest(f)})" for f in _yaml_files(path)]
            raise ManifestError([Diagnostic.error(
                f"no manifest files in directory {path}"
                + (f": skipped {', '.join(skipped)}" if skipped else " (no .yaml or .yml files)"),
                code="io", hint="name the manifest file with -f FILE" if skipped else None)])
        documents = self._read_documents(files)

        version: int | None = None
        version_written = False
        backend: tuple[SourceDocument, Any] | None = None
        state: tuple[SourceDocument, Any] | None = None
        declared: dict[str, _Variable] = {}
        raw_resources: list[tuple[SourceDocument, int, Any]] = []

        for doc in documents:
            if not isinstance(doc.data, dict):
                self.error("a manifest document must be a mapping with version, backend, "
                           "variables and resources", doc.position(()))
                continue
            for key, value in doc.data.items():
                if key not in TOP_LEVEL_KEYS:
                    self.error(f"unknown top-level key {key!r}{did_you_mean(key, TOP_LEVEL_KEYS)}",
                               doc.key_position((key,)), code="unknown-key")
                elif key == "version":
                    version_written = True
                    if value not in SUPPORTED_VERSIONS or isinstance(value, bool):
                        self.error(f"unsupported manifest version {value!r} (supported: "
                                   f"{', '.join(map(str, SUPPORTED_VERSIONS))})", doc.position((key,)))
                    elif version is not None and value != version:
                        self.error(f"version {value} conflicts with version {version} in another file",
                                   doc.position((key,)))
                    else:
                        version = value
                elif key in ("backend", "state"):
                    earlier = backend if key == "backend" else state
                    if earlier is not None:
                        self.error(f"{key} is declared twice (first at {earlier[0].key_position((key,))})",
                                   doc.key_position((key,)))
                    elif key == "backend":
                        backend = (doc, value)
                    else:
                        state = (doc, value)
                elif key == "variables":
                    self._declare_variables(doc, value, declared)
                elif key == "resources":
                    if value is None:
                        continue
                    if not isinstance(value, list):
                        self.error("resources must be a list of resources", doc.position((key,)))
                        continue
                    raw_resources.extend((doc, i, item) for i, item in enumerate(value))
        if documents and not version_written:
            self.error("missing `version: 1`", documents[0].position(()), code="missing-field")

        values = self._resolve_variables(declared, cli_vars, var_files)
        sensitive_names = frozenset(n for n, v in declared.items() if v.spec.sensitive)
        interpolator = Interpolator(values, self.env, self.diagnostics, sensitive=sensitive_names)
        for doc in documents:  # values the YAML reader refused: their schema errors would repeat it
            interpolator.failed.update(doc.failed)
        backend_config = self._backend(backend, interpolator)
        state_config = self._state(state, interpolator)
        resources = self._resources(raw_resources, interpolator)

        manifest = Manifest(
            files=[display_path(f) for f in files], root=root, version=version or 1,
            backend=backend_config, state=state_config, variables=values, resources=resources,
            graph=Graph(), check_files=self.check_files,
            sensitive=Secrets.of([*(values[n] for n in sensitive_names if n in values),
                                  *interpolator.derived], sorted(sensitive_names)))
        for decl in resources.values():
            decl.manifest = manifest
        for decl in resources.values():
            for problem in decl.kind.check(decl, manifest):
                (self.diagnostics if problem.is_error else manifest.warnings).append(problem)
        manifest.graph, problems = build_graph(manifest, self.invalid_addresses)
        self.diagnostics.extend(problems)
        if manifest.sensitive:  # a check may quote a value it refuses
            self.diagnostics = [_redacted(d, manifest.sensitive) for d in self.diagnostics]
            manifest.warnings = [_redacted(d, manifest.sensitive) for d in manifest.warnings]
        if any(d.is_error for d in self.diagnostics):
            raise ManifestError(self.diagnostics + manifest.warnings, sensitive_names=sensitive_names)
        manifest.warnings.extend(self.diagnostics)
        return manifest

    # -- variables -----------------------------------------------------------------------

    def _declare_variables(self, doc: SourceDocument, block: Any, declared: dict[str, _Variable]) -> None:
        if block is None:
            return
        if not isinstance(block, dict):
            self.error("variables must be a mapping of name to default (or {default, description, type})",
                       doc.position(("variables",)))
            return
        for name, raw in block.items():
            path = ("variables", name)
            if not _VARIABLE_NAME.match(name):
                self.error(f"invalid variable name {name!r} (letters, digits and _)",
                           doc.key_position(path))
                continue
            if name in declared:
                first = declared[name]
                self.error(f"variable {name!r} is declared twice (first at "
                           f"{first.source.key_position(first.path)})", doc.key_position(path))
                continue
            if isinstance(raw, dict):
                try:
                    spec = VariableSpec.model_validate(raw)
                except ValidationError as exc:
                    self.diagnostics.extend(validation_diagnostics(
                        exc, raw, VariableSpec, doc.position, doc.key_position, None, prefix=path))
                    continue
                has_default = "default" in raw
            else:
                spec, has_default = VariableSpec(default=raw), True
            if has_default:
                # Defaults may read the environment but not other variables (no ordering puzzles).
                defaults = Interpolator({}, self.env, self.diagnostics, allow_vars=False)
                default_path = path + ("default",) if isinstance(raw, dict) else path
                value = defaults.resolve(spec.default, lambda p, base=default_path: doc.position(base + p))
                spec = spec.model_copy(update={"default": value})
                if spec.type and not _TYPE_CHECKS[spec.type](value):
                    self.error(f"default of variable {name!r} is not a {spec.type}", doc.position(default_path))
            declared[name] = _Variable(spec, has_default, doc, path)

    def _resolve_variables(self, declared: dict[str, _Variable], cli_vars: Mapping[str, Any],
                           var_files: Sequence[str | os.PathLike]) -> dict[str, Any]:
        values = {name: v.spec.default for name, v in declared.items() if v.has_default}
        for var_file in var_files:
            file = Path(var_file)
            if not file.is_file():
                self.error(f"variable file not found: {var_file}", code="io")
                continue
            for doc in self._read_documents([file]):
                if not isinstance(doc.data, dict):
                    self.error("a variable file must be a mapping of name to value", doc.position(()))
                    continue
                # Variable files may read the environment (a subscription id kept out of git).
                from_env = Interpolator({}, self.env, self.diagnostics, allow_vars=False)
                for name, value in doc.data.items():
                    value = from_env.resolve(value, lambda p, doc=doc, name=name: doc.position((name,) + p))
                    variable = declared.get(name)
                    if variable is None:
                        self.error(f"variable {name!r} is not declared in the manifest"
                                   f"{did_you_mean(name, declared)}", doc.key_position((name,)),
                                   code="undeclared-variable")
                    elif variable.spec.type and not _TYPE_CHECKS[variable.spec.type](value):
                        self.error(f"variable {name!r} must be a {variable.spec.type}",
                                   doc.position((name,)))
                    else:
                        values[name] = value
        refused: set[str] = set()  # an invalid --var already says this variable has no value
        for name, value in cli_vars.items():
            variable = declared.get(name)
            if variable is None:
                self.error(f"--var {name}: no such variable in the manifest{did_you_mean(name, declared)}",
                           code="undeclared-variable")
                continue
            try:
                values[name] = coerce_variable(value, variable.spec, variable.has_default)
            except ValueError as exc:
                if variable.spec.sensitive:
                    message = (f"--var {name}: not a valid {variable.spec.type or 'value'} "
                               "(the variable is sensitive, "
                               "so its value is not shown)")
                else:
                    message = (f"--var {name}={value if len(value) <= 60 else value[:57] + '...'}: "
                               f"variable {name!r} {exc}")
                self.error(message, variable.source.key_position(variable.path), code="invalid-value")
                refused.add(name)
        for name, variable in declared.items():
            if name not in values and name not in refused:
                self.error(f"variable {name!r} has no value", variable.source.key_position(variable.path),
                           code="missing-variable",
                           hint=f"pass --var {name}=VALUE, add it to a --var-file, or give it a default")
        return values

    # -- blocks --------------------------------------------------------------------------

    def _validated(self, model: type[BaseModel], data: Any, doc: SourceDocument, path: tuple,
                   address: str | None, interpolator: Interpolator) -> BaseModel | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.diagnostics.extend(
                d for d in validation_diagnostics(
                    exc, data, model, doc.position, doc.key_position, address, prefix=path)
                if d.position not in interpolator.failed)
            return None

    def _backend(self, block: tuple[SourceDocument, Any] | None, interpolator: Interpolator) -> Any:
        default = BACKEND_CONFIGS["local"]()
        if block is None:
            return default
        doc, raw = block
        data = interpolator.resolve(raw, lambda p: doc.position(("backend",) + p))
        if not isinstance(data, dict):
            self.error("backend must be a mapping such as {type: local}", doc.position(("backend",)))
            return default
        backend_type = data.get("type", "local")
        model = BACKEND_CONFIGS.get(backend_type) if isinstance(backend_type, str) else None
        if model is None:
            self.error(f"unknown backend type {backend_type!r}"
                       f"{did_you_mean(str(backend_type), BACKEND_CONFIGS)} "
                       f"(available: {', '.join(BACKEND_CONFIGS)})", doc.position(("backend", "type")))
            return default
        return self._validated(model, data, doc, ("backend",), None, interpolator) or default

    def _state(self, block: tuple[SourceDocument, Any] | None, interpolator: Interpolator) -> Any:
        """The model of the block's `type` (StateConfig's union, picked like a backend's)."""
        default = StateConfig().root
        if block is None:
            return default
        doc, raw = block
        data = interpolator.resolve(raw, lambda p: doc.position(("state",) + p))
        state_type = data.get("type", "sqlite") if isinstance(data, dict) else "sqlite"
        model = STATE_CONFIGS.get(state_type) if isinstance(state_type, str) else None
        if model is None:
            self.error(f"unknown state type {state_type!r}{did_you_mean(str(state_type), STATE_CONFIGS)} "
                       f"(available: {', '.join(STATE_CONFIGS)})", doc.position(("state", "type")))
            return default
        return self._validated(model, data, doc, ("state",), None, interpolator) or default

    def _resources(self, raw_resources: list[tuple[SourceDocument, int, Any]],
                   interpolator: Interpolator) -> dict[str, ResourceDecl]:
        resources: dict[str, ResourceDecl] = {}
        for doc, index, raw in raw_resources:
            path = ("resources", index)
            if not isinstance(raw, dict):
                self.error("each resource must be a mapping with `kind` and `name`", doc.position(path))
                continue
            kind_name = raw.get("kind")
            name = raw.get("name")
            shown = f"{kind_name}.{name}" if isinstance(kind_name, str) and isinstance(name, str) else None
            if kind_name is None:
                self.error("resource has no `kind`", doc.position(path), shown, code="missing-field",
                           hint=f"kinds: {', '.join(KINDS)}")
                continue
            kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
            if kind is None:
                self.error(f"unknown kind {kind_name!r}{did_you_mean(str(kind_name), KINDS)}",
                           doc.position(path + ("kind",)), shown, code="unknown-kind",
                           hint=f"kinds: {', '.join(KINDS)}")
                continue
            reported = len(self.diagnostics)
            data = interpolator.resolve(raw, lambda p, base=path, d=doc: d.position(base + p), (), shown)
            if isinstance(data.get("name"), str) and data["name"] != name:
                # The name was interpolated: label everything with the name it resolved to.
                shown = f"{kind_name}.{data['name']}"
                self.diagnostics[reported:] = [replace(d, address=shown) for d in self.diagnostics[reported:]]
            spec = self._validated(kind.spec, data, doc, path, shown, interpolator)
            if spec is None:
                if shown:
                    self.invalid_addresses.add(shown)
                continue
            decl = ResourceDecl(kind=kind, spec=spec, source=doc, path=path, root=self.root)  # type: ignore[arg-type]
            earlier = resources.get(decl.address)
            if earlier is not None:
                self.error(f"duplicate resource {decl.address} (first declared at {earlier.position})",
                           decl.position, decl.address, code="duplicate-resource")
                continue
            resources[decl.address] = decl
        return resources
