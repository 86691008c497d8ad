"""What every resource kind declares: its schema and its diff rules.

A kind is one class: the pydantic model users write in YAML (`spec`), which fields refer to
other resources (`Ref` in the field's metadata; these become graph edges), which fields force
replacement, whether a replacement creates the new object before destroying the old, and any
checks that need the whole manifest. Backends implement one handler per kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from foundryctl.backends.base import Observed
    from foundryctl.errors import Diagnostic
    from foundryctl.manifest.model import Manifest, ResourceDecl

ADDRESS_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
_ADDRESS = re.compile(rf"^([A-Za-z]+)\.({ADDRESS_NAME})$")

# Fields every resource has; they steer foundryctl and never reach a backend.
META_FIELDS = frozenset({"kind", "name", "protect", "depends_on"})


def name_rule(pattern: str, rule: str) -> AfterValidator:
    """A name check whose error says the rule in words instead of quoting a regex."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"invalid name {value!r}: {rule}")
        return value

    return AfterValidator(check)


RESOURCE_NAME = name_rule(rf"^{ADDRESS_NAME}$", "use 1-128 letters, digits, '-' or '_', "
                          "starting with a letter or digit")


def parse_address(address: str) -> tuple[str, str] | None:
    """`Kind.name` -> (kind, name), or None when it is not an address."""
    match = _ADDRESS.match(address)
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True, slots=True)
class Ref:
    """Field metadata: this string names another resource of `kind` in the manifest.

    `containment` means the referring resource lives inside the target (a project in its
    hub, a role assignment at its scope): replacing or deleting the target takes this
    resource with it, so the plan replaces it too.
    """

    kind: str
    containment: bool = False


@dataclass(frozen=True, slots=True)
class Reference:
    path: tuple  # where the reference is written, for error positions
    target: str  # the address it points at
    containment: bool


class Spec(BaseModel):
    """Base of every kind's schema: strict, immutable, with the shared meta fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    kind: str
    name: Annotated[str, RESOURCE_NAME, Field(description="Resource name; the address is `Kind.name`.")]
    protect: bool = Field(False, description="Refuse any plan that would delete or replace this resource.")
    depends_on: list[Annotated[str, Field(pattern=rf"^[A-Za-z]+\.{ADDRESS_NAME}$")]] = Field(
        default_factory=list, description="Extra ordering edges, as addresses `Kind.name`.")


class Kind:
    """One resource kind. Subclasses set the class attributes; instances are never made."""

    name: ClassVar[str]
    spec: ClassVar[type[Spec]]
    summary: ClassVar[str] = ""
    # Top-level attributes whose change cannot be made in place.
    force_new: ClassVar[frozenset[str]] = frozenset()
    # Replace by creating the new object first (the old one keeps serving until then).
    create_before_destroy: ClassVar[bool] = False
    # Creating something that already exists adopts it (Azure's idempotent PUTs), instead
    # of failing with "already exists; import it".
    adopts_existing: ClassVar[bool] = False
    # Attributes the backend moves on by itself (a job's status as it trains): a change
    # there since the last apply is progress, not a change made outside foundryctl.
    progress_attributes: ClassVar[frozenset[str]] = frozenset()
    # Data-plane kinds: the acting principal needs a role, so they wait for the manifest's
    # role assignments that cover them.
    needs_role: ClassVar[bool] = False

    @classmethod
    def address(cls, name: str) -> str:
        return f"{cls.name}.{name}"

    @classmethod
    def attributes(cls, spec: Spec) -> dict[str, Any]:
        """The desired attributes a backend receives: the spec without meta fields."""
        return spec.model_dump(mode="json", exclude=META_FIELDS)

    @classmethod
    def desired_attributes(cls, decl: ResourceDecl) -> dict[str, Any]:
        """What the plan diffs against the backend: `attributes`, plus values derived from
        files the resource names (a dataset's content hash)."""
        return cls.attributes(decl.spec)

    @classmethod
    def resolve(cls, decl: ResourceDecl, attributes: dict[str, Any], observed: Mapping[str, Observed | None],
                errors: list[Diagnostic]) -> dict[str, Any]:
        """The desired attributes completed from what the refresh saw of other resources (by
        address): a deployment's checkpoint picked by its job's metrics. A value that cannot
        be resolved yet stays as `desired_attributes` left it; one that never can is an error
        appended to `errors`."""
        return attributes

    @classmethod
    def describe_changes(cls, before: dict[str, Any] | None, after: dict[str, Any],
                         decl: ResourceDecl | None = None) -> list[str]:
        """Notes the plan prints beside a create (`before` None), update or replace, in the
        user's terms."""
        return []

    @classmethod
    def admit(cls, before: dict[str, Any] | None, after: dict[str, Any],
              outputs_of: Callable[[str], dict[str, Any] | None]) -> None:
        """Refuse a create or update at apply time, before the backend is asked (raise a
        BackendError): a deployment whose new model failed its evaluation gate. `outputs_of`
        reads another resource's outputs as this apply left them."""

    @classmethod
    def plan_gates(cls, decl: ResourceDecl, before: dict[str, Any] | None, after: dict[str, Any],
                   observed: Mapping[str, Observed | None]) -> list[dict[str, Any]]:
        """The gates this change waits on, with their results where the refresh saw some (the
        plan shows them, the Markdown plan as a table)."""
        return []

    @classmethod
    def pending(cls, attributes: dict[str, Any], outputs: dict[str, Any]) -> str | None:
        """Why an object that exists is not ready for what depends on it yet (a job still
        training), or None. Apply defers its dependents to a later apply instead of failing."""
        return None

    @classmethod
    def follow_notes(cls, decl: ResourceDecl, changes: dict[str, Any]) -> list[str]:
        """Plan notes on how this resource's change waits for its dependencies' changes
        (`changes`: the plan's changes so far, by address)."""
        return []

    @classmethod
    def references(cls, spec: Spec) -> list[Reference]:
        """Every `Ref` field that is set, found by walking the spec's models."""
        found: list[Reference] = []
        _collect_references(spec, (), found)
        return found

    @classmethod
    def implicit_dependencies(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        """Edges the manifest does not spell out (a hub waits for provider registrations)."""
        return []

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        """Addresses of the resources that contain this one, outermost first."""
        return []

    @classmethod
    def check(cls, decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
        """Rules that need the whole manifest (and the catalog). Schema rules live in `spec`."""
        return []


@cache
def _ref_fields(model: type[BaseModel]) -> tuple[tuple[str, Ref | None, bool], ...]:
    """(field name, Ref or None, holds nested models) for each field worth walking."""
    out = []
    for field_name, info in model.model_fields.items():
        ref = next((m for m in info.metadata if isinstance(m, Ref)), None)
        nested = _holds_model(info.annotation)
        if ref is not None or nested:
            out.append((field_name, ref, nested))
    return tuple(out)


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _holds_model(get_args(annotation)[0])
    if origin in (list, tuple, Union, dict) or str(origin) == "types.UnionType":
        return any(_holds_model(arg) for arg in get_args(annotation))
    return False


def _collect_references(model: BaseModel, path: tuple, found: list[Reference]) -> None:
    for field_name, ref, nested in _ref_fields(type(model)):
        value = getattr(model, field_name)
        if value is None:
            continue
        here = path + (field_name,)
        if ref is not None:
            if isinstance(value, str):
                found.append(Reference(here, f"{ref.kind}.{value}", ref.containment))
            elif isinstance(value, list):
                found.extend(Reference(here + (i,), f"{ref.kind}.{v}", ref.containment)
                             for i, v in enumerate(value) if isinstance(v, str))
        if nested:
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if isinstance(item, BaseModel):
                    _collect_references(item, here + (i,) if isinstance(value, list) else here, found)
