"""The quickstart against a real Azure subscription: plan, apply, an empty plan, a question
to the endpoint, destroy. CI never runs this (Azure cannot be reached from it, and a run is
billed); see docs/azure-backend.md, "The live suite".

    FOUNDRYCTL_AZURE_LIVE=1 AZURE_SUBSCRIPTION_ID=... FOUNDRYCTL_RESOURCE_GROUP=... \\
    FOUNDRYCTL_PRINCIPAL=$(az ad signed-in-user show --query id -o tsv) \\
    python -m pytest tests/live -v

It uses your own login (DefaultAzureCredential: `az login`, a service principal's AZURE_*
variables or a managed identity) and an existing resource group. Training a Phi model takes
an hour or more; FOUNDRYCTL_LIVE_TIMEOUT (seconds, default 4 h) bounds the apply.
FOUNDRYCTL_LIVE_FOUNDRY=1 adds manifests/foundry (a Foundry account, project and GPT-4.1-nano
fine-tune); FOUNDRYCTL_FOUNDRY_SUBDOMAIN names its account's free DNS label.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NEEDED = ("AZURE_SUBSCRIPTION_ID", "FOUNDRYCTL_RESOURCE_GROUP", "FOUNDRYCTL_PRINCIPAL")

pytestmark = pytest.mark.skipif(
    os.environ.get("FOUNDRYCTL_AZURE_LIVE") != "1" or not all(os.environ.get(n) for n in NEEDED),
    reason="live Azure suite: set FOUNDRYCTL_AZURE_LIVE=1 and " + ", ".join(NEEDED))


def foundryctl(*args: str, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "foundryctl", *args], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the quickstart with its data, and a variable file that purges on destroy
    (a soft-deleted hub would keep its name taken for the next run)."""
    pytest.importorskip("azure.ai.ml", reason="pip install 'foundryctl[azure]'")
    root = tmp_path_factory.mktemp("live")
    shutil.copytree(REPO / "manifests", root / "manifests")
    azure_vars = (root / "manifests" / "envs" / "azure.yaml").read_text()
    (root / "live.yaml").write_text(azure_vars.replace("  location: eastus2\n",
                                                       "  location: eastus2\n  purge_on_delete: true\n"))
    return root


def args(*command: str) -> list[str]:
    return [*command, "-f", "manifests/quickstart.yaml", "--var-file", "live.yaml"]


def test_quickstart_on_azure(workdir: Path) -> None:
    limit = float(os.environ.get("FOUNDRYCTL_LIVE_TIMEOUT", "14400"))
    try:
        validate = foundryctl(*args("validate"), cwd=workdir)
        assert validate.returncode == 0, validate.stderr
        plan = foundryctl(*args("plan", "--detailed-exitcode"), cwd=workdir)
        assert plan.returncode == 2, plan.stdout + plan.stderr
        assert "8 to add" in plan.stdout
        apply = foundryctl(*args("apply", "--auto-approve"), cwd=workdir, timeout=limit)
        assert apply.returncode == 0, apply.stdout + apply.stderr
        again = foundryctl(*args("plan", "--detailed-exitcode"), cwd=workdir)
        assert again.returncode == 0, again.stdout + again.stderr  # nothing drifted
        listing = foundryctl(*args("state", "show", "Deployment.xbox-agent", "--json"), cwd=workdir)
        assert listing.returncode == 0, listing.stderr
        endpoint = json.loads(listing.stdout)["outputs"]["endpoint"]
        assert endpoint.startswith("https://")
        for secret_holder in (apply.stdout + apply.stderr, listing.stdout):
            assert "primaryKey" not in secret_holder
    finally:
        destroy = foundryctl(*args("destroy", "--auto-approve"), cwd=workdir, timeout=3600)
        assert destroy.returncode == 0, destroy.stdout + destroy.stderr


FOUNDRY = pytest.mark.skipif(os.environ.get("FOUNDRYCTL_LIVE_FOUNDRY") != "1",
                             reason="the Foundry-project path: also set FOUNDRYCTL_LIVE_FOUNDRY=1 (and "
                                    "FOUNDRYCTL_FOUNDRY_SUBDOMAIN to a free DNS label)")


@FOUNDRY
def test_foundry_project_path_on_azure(workdir: Path) -> None:
    """manifests/foundry on Azure: account, project, role, a GPT-4.1-nano fine-tune through the
    OpenAI-style API, a content-filter policy and the deployment of the fine-tuned model."""
    limit = float(os.environ.get("FOUNDRYCTL_LIVE_TIMEOUT", "14400"))
    foundry_vars = (workdir / "manifests" / "envs" / "azure-foundry.yaml").read_text()
    (workdir / "live-foundry.yaml").write_text(
        foundry_vars.replace("  location: eastus2\n", "  location: eastus2\n  purge_on_delete: true\n"))

    def run(*command: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        return foundryctl(*command, "-f", "manifests/foundry", "--var-file", "live-foundry.yaml", cwd=workdir,
                          timeout=timeout)

    try:
        assert (validate := run("validate")).returncode == 0, validate.stdout + validate.stderr
        plan = run("plan", "--detailed-exitcode")
        assert plan.returncode == 2 and "6 to add" in plan.stdout, plan.stdout + plan.stderr
        apply = run("apply", "--auto-approve", timeout=limit)
        assert apply.returncode == 0, apply.stdout + apply.stderr
        again = run("plan", "--detailed-exitcode")
        assert again.returncode == 0, again.stdout + again.stderr
        metrics = run("jobs", "metrics", "xbox-nano", "--format", "json")
        assert metrics.returncode == 0 and json.loads(metrics.stdout), metrics.stdout + metrics.stderr
    finally:
        destroy = run("destroy", "--auto-approve", timeout=3600)
        assert destroy.returncode == 0, destroy.stdout + destroy.stderr
