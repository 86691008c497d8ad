"""The loaded manifest: typed resources with the source position of every value."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundryctl.errors import Diagnostic, Position
from foundryctl.sensitive import NO_SECRETS, Secrets

if TYPE_CHECKING:
    from foundryctl.graph import Graph
    from foundryctl.kinds import Kind, Reference, Spec
    from foundryctl.manifest.schema import BackendConfig, StateConfig
    from foundryctl.manifest.yamlsource import SourceDocument


@dataclass(eq=False)
class ResourceDecl:
    """One resource as written in the manifest, validated."""

    kind: type[Kind]
    spec: Spec
    source: SourceDocument = field(repr=False)
    path: tuple = ()  # where the resource sits in its document: ("resources", i)
    root: Path = Path(".")  # the manifest's root directory (files it names resolve from here)
    manifest: Manifest | None = field(default=None, repr=False)  # set once the manifest exists

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return f"{self.kind.name}.{self.spec.name}"

    @cached_property
    def attributes(self) -> dict[str, Any]:
        return self.kind.desired_attributes(self)

    @cached_property
    def references(self) -> list[Reference]:
        return self.kind.references(self.spec)

    @property
    def position(self) -> Position:
        """Where the resource's mapping starts (its `- kind:` line)."""
        return self.source.position(self.path)

    def position_of(self, path: tuple = ()) -> Position:
        """Where the value at `path` inside this resource was written (or its nearest parent)."""
        return self.source.position(self.path + path)


@dataclass(eq=False)
class Manifest:
    files: list[str]
    root: Path  # relative paths in the manifest (state, backend, data) resolve from here
    version: int
    backend: BackendConfig
    state: StateConfig
    variables: dict[str, Any]
    resources: dict[str, ResourceDecl]  # by address, in declaration order
    graph: Graph
    warnings: list[Diagnostic] = field(default_factory=list)
    check_files: bool = True  # whether kinds check the files they name (see load_manifest)
    sensitive: Secrets = NO_SECRETS  # values of `sensitive: true` variables, and strings made from them

    def addresses_of_kind(self, kind: str) -> list[str]:
        return list(self._by_kind.get(kind, ()))

    @cached_property
    def _by_kind(self) -> dict[str, list[str]]:
        by_kind: dict[str, list[str]] = {}
        for address, decl in self.resources.items():
            by_kind.setdefault(decl.kind.name, []).append(address)
        return by_kind

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    @cached_property
    def fingerprint(self) -> str:
        """Digest of everything a plan depends on; a saved plan refuses a changed manifest."""
        content = {
            "backend": self.backend.model_dump(mode="json"),
            "resources": [[a, r.attributes, r.spec.protect, self.graph.dependencies(a)]
                          for a, r in self.resources.items()],
        }
        # Sensitive values enter as their slow hashes: a saved plan (a CI artifact) carries
        # this digest, and must not let a short secret be guessed from it cheaply.
        if self.sensitive:
            content = self.sensitive.redact(content, stored=True)
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()
