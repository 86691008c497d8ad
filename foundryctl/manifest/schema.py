"""pydantic models of the manifest's top-level blocks (resources are modelled by their kinds)."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

if TYPE_CHECKING:
    from foundryctl.backends.local.config import LocalBackendConfig

    BackendConfig = LocalBackendConfig
else:
    BackendConfig = BaseModel

# `prices` and `policies` are read by foundryctl.cost and foundryctl.policy (manifest/blocks.py).
TOP_LEVEL_KEYS = ("version", "backend", "state", "variables", "resources", "prices", "policies")
SUPPORTED_VERSIONS = (1,)


class SqliteStateConfig(BaseModel):
    """State in a SQLite file beside the manifest (the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["sqlite"] = "sqlite"
    path: str = Field(".foundryctl/state.db", description="SQLite state file, relative to the manifest.")


# Keys people reach for that would put a secret in the manifest (and so in Git).
_SECRET_KEYS = ("account_key", "access_key", "key_value", "connection_string", "sas_token", "sas")


class AzureBlobStateConfig(BaseModel):
    """State in an Azure Storage blob, locked with a blob lease (like Terraform's azurerm backend).

    Credentials never go here: the connection string comes from the environment variable
    named by `connection_string_env`, else azure-identity's DefaultAzureCredential.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["azure_blob"]
    account_url: str = Field(description="Blob endpoint: https://ACCOUNT.blob.core.windows.net "
                                         "(or http://127.0.0.1:10000/devstoreaccount1 for Azurite).")
    container: str = Field(description="An existing blob container.")
    key: str = Field("foundryctl.state", description="Blob name of the state document; history "
                                                     "goes to KEY.history beside it.")
    lease_seconds: int = Field(60, ge=15, le=60, description="Lock lease, renewed while held; a "
                                                             "killed holder's lock frees after this.")
    connection_string_env: str = Field("FOUNDRYCTL_STATE_CONNECTION_STRING",
                                       pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                       description="Environment variable holding a storage "
                                                   "connection string (else DefaultAzureCredential).")

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in _SECRET_KEYS):
            raise ValueError("a storage key or connection string never goes in the manifest: set "
                             "it in the environment variable named by connection_string_env "
                             "(default FOUNDRYCTL_STATE_CONNECTION_STRING), or sign in for "
                             "DefaultAzureCredential")
        return data

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be a URL such as https://ACCOUNT.blob.core.windows.net")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query (a SAS token is a secret: put a connection "
                             "string in the environment instead)")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("plain http is only for a local emulator (127.0.0.1, localhost); use https")
        return value.rstrip("/")

    @field_validator("container")
    @classmethod
    def _container(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", value):
            raise ValueError("a container name is 3-63 lowercase letters, digits and single hyphens, "
                             "starting and ending with a letter or digit")
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value.strip() or len(value) > 1000 or value.endswith("/"):
            raise ValueError("must be a blob name of 1-1000 characters, not ending in '/'")
        return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


StateBlock = Annotated[SqliteStateConfig | AzureBlobStateConfig, Field(discriminator="type")]
STATE_CONFIGS: dict[str, type[BaseModel]] = {"sqlite": SqliteStateConfig, "azure_blob": AzureBlobStateConfig}


# The union serves the JSON Schema and API users (`StateConfig.model_validate(data).root`); the
# loader validates with the model STATE_CONFIGS names for the `type`, so an error lists that
# block's keys, and `Manifest.state` is that model itself.
class StateConfig(RootModel[StateBlock]):
    """Where foundryctl keeps state: `type: sqlite` (default) or `type: azure_blob` (shared)."""

    root: StateBlock = SqliteStateConfig()


class VariableSpec(BaseModel):
    """Long form of a variable: `{default, description, type, sensitive}`. A scalar or list is its own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Any = None
    description: str = ""
    type: Literal["string", "number", "integer", "boolean", "list", "map"] | None = None
    sensitive: bool = Field(False, description=(
        "Never show or store the value: plans print `(sensitive value)`, state and saved plans "
        "keep a salted hash, and so does every string the variable is interpolated into."))


def coerce_variable(value: Any, spec: VariableSpec, has_default: bool) -> Any:
    """Turn a --var string into the variable's type (declared, or that of its default).

    A value that is not of that type raises ValueError saying what was expected and why."""
    if not isinstance(value, str):
        return value
    wanted, why = spec.type, "its declared type"
    if wanted is None and has_default and spec.default is not None:
        wanted = {bool: "boolean", int: "integer", float: "number", list: "list", dict: "map"}.get(
            type(spec.default))
        why = f"the type of its default, {_short(spec.default)}"
    if wanted in (None, "string"):
        return value
    refused = ValueError(f"is {_ARTICLES[wanted]} ({why}); {_short(value)} is not one")
    if wanted == "boolean":
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise refused
    if wanted in ("integer", "number"):
        text = value.strip()
        if not _NUMBER.fullmatch(text) or len(text) > 100:
            raise refused  # also refuses nan and inf, and digits Python will not convert
        text = text.replace("_", "")
        if wanted == "integer":
            if not text.lstrip("+-").isdigit():
                raise refused
            return int(text)
        number = float(text)
        if not math.isfinite(number):
            raise refused
        return int(number) if number.is_integer() and "." not in text else number
    # Lists and maps are written inline (--var 'tags={team: ml}'), read with the manifest's
    # YAML reader and its limits.
    from foundryctl.manifest.yamlsource import load_yaml_documents

    documents, problems = load_yaml_documents(value, "--var")
    errors = [d for d in problems if d.is_error]
    if errors:
        raise ValueError(f"is {_ARTICLES[wanted]} ({why}); {_short(value)} is not valid YAML: "
                         f"{errors[0].message}")
    parsed = documents[0].data if len(documents) == 1 else None
    if not isinstance(parsed, list if wanted == "list" else dict):
        raise refused
    return parsed


_DIGITS = r"\d(?:_?\d)*"  # Python's literals: an underscore only between digits
_NUMBER = re.compile(rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?")
_ARTICLES = {"boolean": "a boolean (true or false)", "integer": "an integer", "number": "a number",
             "list": "a list such as [a, b]", "map": "a map such as {key: value}"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
