"""Papercuts a newcomer hits in the first minutes: hints that run as printed, manifest
discovery at a repository root, Terraform-style flags, readable job numbers."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
from conftest import run_cli

MANIFEST = """\
version: 1
backend:
  type: local
  registration_delay: 0.1
variables:
  location: eastus2
  team: {team}
resources:
  - kind: Hub
    name: ft-hub
    location: ${{var.location}}
    tags: {{team: "${{var.team}}"}}
  - kind: Project
    name: xbox-support
    hub: ft-hub
"""


def _infra(root: Path, team: str = "ml") -> Path:
    """A manifest in a subdirectory, so that hints need `-f` to run from the root."""
    (root / "infra").mkdir()
    manifest = root / "infra" / "foundry.yaml"
    manifest.write_text(MANIFEST.format(team=team))
    return manifest


def _run_hint(command: str, cwd: Path):
    words = shlex.split(command)
    assert words[0] == "foundryctl", command
    return run_cli(*words[1:], cwd=cwd)


def _line_after(output: str, marker: str) -> str:
    for line in output.splitlines():
        if marker in line:
            return line.split(marker, 1)[1].strip().strip("`")
    raise AssertionError(f"{marker!r} not in:\n{output}")


def test_the_import_hint_runs_as_printed_from_the_cwd(tmp_path: Path) -> None:
    _infra(tmp_path)
    assert run_cli("apply", "-f", "infra/foundry.yaml", "--auto-approve", cwd=tmp_path).code == 0
    assert run_cli("state", "rm", "Project.xbox-support", "-f", "infra/foundry.yaml", cwd=tmp_path).code == 0
    planned = run_cli("plan", "-f", "infra/foundry.yaml", cwd=tmp_path)
    assert planned.code == 1, planned
    hint = _line_after(planned.stderr, "adopt it with:")
    assert hint.startswith("foundryctl import Project.xbox-support /subscriptions/")
    assert hint.endswith(" -f infra/foundry.yaml")
    adopted = _run_hint(hint, tmp_path)
    assert adopted.code == 0, adopted
    assert run_cli("plan", "-f", "infra/foundry.yaml", "--detailed-exitcode", cwd=tmp_path).code == 0


def test_the_saved_plan_hint_carries_var_files_and_state(tmp_path: Path) -> None:
    _infra(tmp_path)
    (tmp_path / "prod.yaml").write_text("team: platform\n")
    made = run_cli("plan", "-f", "infra/foundry.yaml", "--var-file", "prod.yaml", "--state", "s/prod.db",
                   "--out", "p.plan", cwd=tmp_path)
    assert made.code == 0, made
    hint = made.stdout.strip().splitlines()[-1].strip()
    assert hint == "foundryctl apply p.plan -f infra/foundry.yaml --var-file prod.yaml --state s/prod.db"
    applied = _run_hint(hint, tmp_path)
    assert applied.code == 0, applied
    assert (tmp_path / "s" / "prod.db").exists()
    shown = run_cli("state", "show", "Hub.ft-hub", "-f", "infra/foundry.yaml", "--state", "s/prod.db",
                    cwd=tmp_path)
    assert "platform" in shown.stdout, shown


def test_hints_get_the_flags_after_each_command_they_name(tmp_path: Path, monkeypatch) -> None:
    from foundryctl.cli import common

    monkeypatch.chdir(tmp_path)
    with click.Context(click.Command("x"), obj=common.Settings()):
        common.settings().manifest_flags = common.manifest_flags(
            tmp_path / "infra" / "foundry.yaml", var_files=[tmp_path / "v.yaml"], variables=["a=b c"])
        assert common.runnable("follow it with `foundryctl jobs logs bot --follow` and apply") == (
            "follow it with `foundryctl jobs logs bot --follow -f infra/foundry.yaml --var-file v.yaml "
            "--var 'a=b c'` and apply")
        assert common.runnable("(keys: foundryctl deployments keys bot)") == (
            "(keys: foundryctl deployments keys bot -f infra/foundry.yaml --var-file v.yaml --var 'a=b c')")
        assert common.runnable("as well (foundryctl destroy --target A), or; run: foundryctl plan.") == (
            "as well (foundryctl destroy --target A -f infra/foundry.yaml --var-file v.yaml --var 'a=b c'), "
            "or; run: foundryctl plan -f infra/foundry.yaml --var-file v.yaml --var 'a=b c'.")
        # commands that take no manifest, and words that are not commands, are left alone
        assert common.runnable("foundryctl data validate x.jsonl") == "foundryctl data validate x.jsonl"
        assert common.runnable("foundryctl does not know") == "foundryctl does not know"
        assert common.runnable("see `foundryctl plan`") == (
            "see `foundryctl plan -f infra/foundry.yaml --var-file v.yaml --var 'a=b c'`")
    with click.Context(click.Command("x"), obj=common.Settings()):
        common.settings().manifest_flags = common.manifest_flags(Path("."))
        assert common.runnable("see `foundryctl plan`") == "see `foundryctl plan`"


def test_terraform_single_dash_flags_work(tmp_path: Path) -> None:
    _infra(tmp_path)
    made = run_cli("plan", "-f", "infra/foundry.yaml", "-out=p.plan", "-var", "team=x", "-refresh=false",
                   cwd=tmp_path)
    assert made.code == 0, made
    assert (tmp_path / "p.plan").exists()
    applied = run_cli("apply", "-auto-approve", "-f", "infra/foundry.yaml", "-var=team=y", "-target",
                      "Hub.ft-hub", cwd=tmp_path)
    assert applied.code == 0 and "1 added" in applied.stdout, applied
    unchanged = run_cli("plan", "-detailed-exitcode", "-f", "infra/foundry.yaml", "-var", "team=y",
                        "-target=Hub.ft-hub", cwd=tmp_path)
    assert unchanged.code == 0, unchanged
    (tmp_path / "v.yaml").write_text("team: z\n")
    changed = run_cli("plan", "-detailed-exitcode", "-f", "infra/foundry.yaml", "-var-file", "v.yaml",
                      "-target", "Hub.ft-hub", cwd=tmp_path)
    assert changed.code == 2, changed


def test_terraform_style_touches_only_the_shared_names() -> None:
    from foundryctl.cli import terraform_style

    assert terraform_style(["plan", "-out", "p", "-f", "x.yaml", "-refresh=true"]) == [
        "plan", "--out", "p", "-f", "x.yaml", "--refresh"]
    assert terraform_style(["jobs", "logs", "bot", "-F", "-h"]) == ["jobs", "logs", "bot", "-F", "-h"]
    assert terraform_style(["chat", "bot", "--", "-out"]) == ["chat", "bot", "--", "-out"]
    assert terraform_style(["plan", "-output=x"]) == ["plan", "-output=x"]  # not a shared name
