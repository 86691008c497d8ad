"""ProviderRegistration: a resource provider namespace registered on the subscription."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from foundryctl import catalog
from foundryctl.kinds.base import Kind, Spec

NAMESPACE_PATTERN = r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+$"


class ProviderRegistrationSpec(Spec):
    kind: Literal["ProviderRegistration"]
    namespace: Annotated[str, Field(pattern=NAMESPACE_PATTERN,
                                    description="Resource provider namespace, e.g. Microsoft.Network.")]

    @field_validator("namespace")
    @classmethod
    def _canonical_case(cls, value: str) -> str:
        # Azure treats namespaces case-insensitively and answers in its own spelling.
        return catalog.providers().canonical.get(value.lower(), value)


class ProviderRegistration(Kind):
    name = "ProviderRegistration"
    spec = ProviderRegistrationSpec
    summary = ("Registers a resource provider namespace on the subscription "
               "(NotRegistered → Registering → Registered; apply waits).")
    force_new = frozenset({"namespace"})
    adopts_existing = True  # registering an already registered namespace is a no-op in Azure
