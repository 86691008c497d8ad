"""RaiPolicy (a Foundry account's content-filter policy, Microsoft.CognitiveServices
accounts/raiPolicies 2025-06-01): the manifest's rules per category, severity and source at
the line; the PUT Azure receives (checked against the vendored spec by the fake's recorder
pass) and the plan -> apply -> plan -> destroy cycle on Azure's fake and on the local backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azurefake.fixtures import write_manifest
from click.testing import CliRunner
from conftest import Project

RESOURCES = """\
- kind: FoundryAccount
  name: ft-foundry
  location: eastus2
  custom_subdomain_name: ft-foundry-rai
- kind: RaiPolicy
  name: strict
  account: ft-foundry
  mode: Blocking
  content_filters:
    - {category: Violence, source: Completion, severity_threshold: Medium}
    - {category: Hate, source: Prompt, severity_threshold: Low}
    - {category: Jailbreak, source: Prompt}
    - {category: Protected Material Text, source: Completion, blocking: false}
"""


def run(*args: str) -> Any:
    from foundryctl.cli import cli

    return CliRunner().invoke(cli, [*args, "-f", "foundry.yaml"], env={"NO_COLOR": "1", "COLUMNS": "200"},
                              catch_exceptions=False)


def test_on_azure_apply_puts_the_policy_and_a_second_plan_is_empty(fake_azure: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(tmp_path, RESOURCES)
    monkeypatch.chdir(tmp_path)
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    [put] = [c for c in fake_azure.requests("PUT") if "/raiPolicies/" in c.path]
    assert put.path.endswith("/accounts/ft-foundry/raiPolicies/strict") and put.api_version == "2025-06-01"
    assert put.body == {"properties": {"basePolicyName": "Microsoft.DefaultV2", "mode": "Blocking", "contentFilters": [
        {"name": "Hate", "source": "Prompt", "blocking": True, "enabled": True, "severityThreshold": "Low"},
        {"name": "Jailbreak", "source": "Prompt", "blocking": True, "enabled": True},
        {"name": "Protected Material Text", "source": "Completion", "blocking": False, "enabled": True},
        {"name": "Violence", "source": "Completion", "blocking": True, "enabled": True,
         "severityThreshold": "Medium"}]}}
    again = run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    (tmp_path / "foundry.yaml").write_text((tmp_path / "foundry.yaml").read_text().replace(
        "severity_threshold: Medium", "severity_threshold: High"))
    changed = run("plan", "--detailed-exitcode")
    assert changed.exit_code == 2 and "~ RaiPolicy.strict" in changed.output, changed.output
    assert run("apply", "--auto-approve").exit_code == 0
    destroyed = run("destroy", "--auto-approve")
    assert destroyed.exit_code == 0, destroyed.output
    assert any(c.method == "DELETE" and c.path.endswith("/raiPolicies/strict") for c in fake_azure.calls)


def test_on_the_local_backend_the_same_cycle(project: Project) -> None:
    project.write("version: 1\nbackend:\n  type: local\nresources:\n"
                  + "".join("  " + line + "\n" for line in RESOURCES.splitlines()))
    assert project.cli("apply", "--auto-approve").code == 0
    assert project.cli("plan", "--detailed-exitcode").code == 0
    cloud = project.cloud()
    try:
        [policy] = [r for r in cloud.list(type="Microsoft.CognitiveServices/accounts/raiPolicies")]
        assert policy.properties["mode"] == "Blocking" and len(policy.properties["contentFilters"]) == 4
    finally:
        cloud.close()
    assert project.cli("destroy", "--auto-approve").code == 0


@pytest.mark.parametrize(("old", "new", "message"), [
    ("{category: Hate, source: Prompt, severity_threshold: Low}", "{category: Hate, source: Prompt}",
     "Hate filters at a severity: give severity_threshold (Low, Medium or High)"),
    ("{category: Jailbreak, source: Prompt}", "{category: Jailbreak, source: Completion}",
     "Jailbreak applies to the prompt only (source: Prompt)"),
    ("{category: Jailbreak, source: Prompt}", "{category: Hate, source: Prompt, severity_threshold: High}",
     "content_filters has Hate on the prompt twice"),
    ("{category: Jailbreak, source: Prompt}", "{category: Violent, source: Prompt}", "Violent"),
])
def test_validate_names_the_filter_azure_would_refuse(project: Project, old: str, new: str, message: str) -> None:
    project.write("version: 1\nbackend:\n  type: local\nresources:\n"
                  + "".join("  " + line + "\n" for line in RESOURCES.replace(old, new).splitlines()))
    result = project.cli("validate")
    assert result.code == 1 and message in result.output, result
    assert "foundry.yaml:" in result.output


def test_the_local_server_filters_as_the_policy_says_per_category_and_source() -> None:
    from foundryctl.backends.local.cloud import ArmResource
    from foundryctl.backends.local.handlers.foundry_deployment import filter_settings, unemulated_filters
    from foundryctl.kinds.rai_policy import arm_filters
    from foundryctl.serving.content_filter.policy import FilterPolicy, assess

    filters = [
        {"category": "Violence", "source": "Prompt", "severity_threshold": "High", "blocking": True, "enabled": True},
        {"category": "Violence", "source": "Completion", "severity_threshold": "Low", "blocking": True,
         "enabled": True},
        {"category": "Hate", "source": "Prompt", "severity_threshold": "Low", "blocking": False, "enabled": True},
        {"category": "Sexual", "source": "Completion", "severity_threshold": "Low", "blocking": True,
         "enabled": False},
        {"category": "Jailbreak", "source": "Prompt", "severity_threshold": None, "blocking": True, "enabled": True},
    ]
    policy = ArmResource("/x/raiPolicies/strict", "Microsoft.CognitiveServices/accounts/raiPolicies", "strict",
                         None, None, "/x", {"contentFilters": arm_filters(filters)}, {}, "", "Succeeded",
                         "", "", "")
    settings = filter_settings(policy)
    assert settings["sources"] == {"prompt": {"violence": "high", "hate": "off"},
                                   "completion": {"violence": "low", "sexual": "off"}}
    assert unemulated_filters(policy) == ["Jailbreak"]
    local = FilterPolicy.from_settings(settings)
    medium_violence = {"violence": "medium", "hate": "medium", "sexual": "medium"}
    # the prompt passes violence (High only) and hate (annotate only); sexual falls back to medium
    assert assess(local.for_source("prompt"), medium_violence).filtered_categories == ("sexual",)
    # the completion blocks violence from Low, sexual is disabled, hate takes the default
    assert set(assess(local.for_source("completion"), medium_violence).filtered_categories) == {"violence", "hate"}
    assert filter_settings(None) == {"enabled": True, "threshold": "medium"}
    with pytest.raises(ValueError, match="sources"):
        FilterPolicy.from_settings({"sources": {"answers": {}}})
    with pytest.raises(ValueError, match="sources.prompt: unknown category"):
        FilterPolicy.from_settings({"sources": {"prompt": {"gore": "low"}}})
