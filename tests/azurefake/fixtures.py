"""Fixtures of the Azure contract tests (a pytest plugin loaded by tests/conftest.py): the
SDKs' real HTTP calls answered by FakeAzure.

The credential is the real DefaultAzureCredential chain: its Azure CLI link runs a fake
`az` (on PATH here) that prints a token, as `az account get-access-token` does.
"""

from __future__ import annotations

import base64
import importlib
import json
import pkgutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require

try:
    import azure.ai.ml
    import azure.mgmt.authorization
    import azure.mgmt.resource  # noqa: F401
    import responses
except ImportError as exc:  # pragma: no cover - CI installs the azure extra
    responses = None  # type: ignore[assignment]
    MISSING = f"the Azure SDKs and `responses` (pip install -e '.[azure,dev]'): {exc.name} is missing"
else:
    MISSING = ""

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
RESOURCE_GROUP = "rg-foundry"
LOCATION = "eastus2"
PRINCIPAL = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"  # an Entra object id
SIGNED_IN = "5a0e1f2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"  # the object id of who `az` is signed in as
# An unsigned JWT, as `az account get-access-token` prints a signed one: its `oid` claim is
# how foundryctl knows whose role assignments to check (no request is needed for that).
_CLAIMS = base64.urlsafe_b64encode(json.dumps(
    {"aud": "https://management.azure.com", "oid": SIGNED_IN, "tid": TENANT}).encode()).decode().rstrip("=")
TOKEN = f"eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.{_CLAIMS}.fake-signature"

CLI_TOKEN = json.dumps({"accessToken": TOKEN, "expiresOn": "2099-01-01 00:00:00.000000",
                        "expires_on": 4070908800, "subscription": SUBSCRIPTION, "tenant": TENANT,
                        "tokenType": "Bearer"})
# `az account get-access-token --output json --resource ...` as the Azure CLI answers it.
FAKE_AZ = f"#!/bin/sh\ncat <<'EOF'\n{CLI_TOKEN}\nEOF\n"


@pytest.fixture
def az_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A logged-in Azure CLI (a fake `az` first on PATH), and no other credential."""
    bin_dir = tmp_path / "az-bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    for name in [n for n in __import__("os").environ if n.startswith(("AZURE_", "MSI_", "IDENTITY_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    return az


@pytest.fixture
def fake_azure(az_login: Path) -> Iterator[object]:
    """Every Azure API family the backend calls, answered in-process."""
    if MISSING:
        require(MISSING)
    from azurefake import FakeAzure, families

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeAzure(mock, SUBSCRIPTION, RESOURCE_GROUP, LOCATION)
        for module in pkgutil.iter_modules(families.__path__):
            importlib.import_module(f"azurefake.families.{module.name}").install(fake)
        try:
            yield fake
        finally:
            for cleanup in fake.cleanups:
                cleanup()
    if fake.spec_check:
        # The recorder pass: each ARM request body against the vendored REST specs (tests/specs).
        from specs.contract import check_calls

        problems = check_calls(fake.calls)
        if problems:
            pytest.fail("request bodies that break the azure-rest-api-specs:\n  " + "\n  ".join(problems),
                        pytrace=False)


@pytest.fixture
def foundry_openai(fake_azure: object) -> object:
    """The Foundry resources' OpenAI fine-tuning API (a loopback server) for this test."""
    return fake_azure.state["openai.serve"]()  # type: ignore[attr-defined]


def backend_block(**overrides: object) -> str:
    """The manifest's `backend:` block for the fake subscription (fast polling)."""
    settings = {"type": "azure", "subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP,
                "location": LOCATION, "poll_interval": 0.01, "principal_retry_timeout": 2,
                **overrides}
    lines = "".join(f"  {k}: {v}\n" for k, v in settings.items())
    return "backend:\n" + lines


def write_manifest(directory: Path, resources: str, **backend: object) -> Path:
    path = directory / "foundry.yaml"
    path.write_text("version: 1\n" + backend_block(**backend) + "resources:\n"
                    + textwrap.indent(textwrap.dedent(resources).strip() + "\n", "  "))
    return path


@pytest.fixture
def azure_backend(fake_azure: object, tmp_path: Path) -> Iterator[object]:
    """An AzureBackend on the fake subscription, for handler-level tests."""
    from foundryctl.backends.azure.backend import AzureBackend
    from foundryctl.backends.azure.config import AzureBackendConfig

    config = AzureBackendConfig(type="azure", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                location=LOCATION, poll_interval=0.01, principal_retry_timeout=2)
    backend = AzureBackend(config, tmp_path)
    yield backend
    backend.close()
