"""pydantic models of the manifest's top-level blocks (resources are modelled by their kinds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from foundryctl.backends.local.config import LocalBackendConfig

    BackendConfig = LocalBackendConfig
else:
    BackendConfig = BaseModel

TOP_LEVEL_KEYS = ("version", "backend", "state", "variables", "resources")
SUPPORTED_VERSIONS = (1,)


class StateConfig(BaseModel):
    """Where foundryctl keeps state for this manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["sqlite"] = "sqlite"
    path: str = Field(".foundryctl/state.db", description="SQLite state file, relative to the manifest.")


class VariableSpec(BaseModel):
    """Long form of a variable: `{default, description, type}`. A scalar or list is its own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Any = None
    description: str = ""
    type: Literal["string", "number", "integer", "boolean", "list", "map"] | None = None


def coerce_variable(value: Any, spec: VariableSpec, has_default: bool) -> Any:
    """Turn a --var string into the variable's type (declared, or that of its default)."""
    if not isinstance(value, str):
        return value
    wanted = spec.type
    if wanted is None and has_default and spec.default is not None:
        wanted = {bool: "boolean", int: "integer", float: "number", list: "list", dict: "map"}.get(
            type(spec.default))
    if wanted in (None, "string"):
        return value
    if wanted == "boolean":
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if wanted == "integer":
        return int(value)
    if wanted == "number":
        number = float(value)
        return int(number) if number.is_integer() and "." not in value else number
    import yaml  # lists and maps are written inline: --var 'tags={team: ml}'

    parsed = yaml.safe_load(value)
    expected = list if wanted == "list" else dict
    if not isinstance(parsed, expected):
        raise ValueError(f"expected a {wanted}, got {value!r}")
    return parsed
