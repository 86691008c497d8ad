"""Papercuts a newcomer hits in the first minutes: hints that run as printed, manifest
discovery at a repository root, Terraform-style flags, readable job numbers."""

from __future__ import annotations

import json
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
    then = _line_after(adopted.stdout, "Run `")
    assert then.startswith("foundryctl plan -f infra/foundry.yaml"), adopted
    assert _run_hint(then.split("`")[0] + " --detailed-exitcode", tmp_path).code == 0


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


def _job_in_state(root: Path) -> Path:
    """A FineTuneJob in state whose job directory holds a status, a config and metrics as a
    run writes them (no training needed)."""
    import json

    from foundryctl.state import StateStore
    from foundryctl.state.records import ResourceRecord, Status

    job_dir = root / "job"
    job_dir.mkdir()
    (job_dir / "status.json").write_text(json.dumps({
        "state": "Completed", "epoch": 3, "epochs": 3, "step": 30, "total_steps": 30, "device": "cpu",
        "examples": 40, "loss": 2.172886439732143, "tokens_per_second": 1234.5678}))
    (job_dir / "config.json").write_text(json.dumps({"base_model": "SmolLM2-135M-Instruct", "batch_size": 4,
                                                     "learning_rate": 0.00019999999999999998}))
    rows = [{"type": "eval", "step": 0, "epoch": 0, "valid_loss": 2.9876543, "valid_perplexity": 19.843221,
             "valid_mean_token_accuracy": 0.41234567}]
    rows += [{"type": "step", "step": s, "epoch": s / 10, "train_loss": 2.5 / s, "learning_rate": 2e-4 * (1 - s / 31),
              "tokens_per_second": 1234.5678 + s, "train_mean_token_accuracy": 0.5, "grad_norm": 1.2345678}
             for s in range(1, 31)]
    rows += [{"type": "epoch", "step": 30, "epoch": 3, "train_loss": 0.123456789, "valid_loss": 1.87654321,
              "valid_perplexity": 123456.789, "valid_mean_token_accuracy": 0.612345678}]
    (job_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = StateStore(root / ".foundryctl" / "state.db")
    store.put(ResourceRecord(address="FineTuneJob.xbox-agent", kind="FineTuneJob", name="xbox-agent",
                             backend_id="/jobs/xbox-agent", status=Status.READY,
                             attributes={"runner": "local"}, outputs={"job_dir": str(job_dir)}))
    store.close()
    return job_dir


def test_jobs_show_prints_readable_numbers(project) -> None:
    project.quickstart()
    _job_in_state(project.root)
    shown = project.cli("jobs", "show", "xbox-agent")
    assert shown.code == 0, shown
    assert "loss = 2.173\n" in shown.stdout, shown
    assert "learning_rate = 2.00e-04\n" in shown.stdout, shown
    assert "tokens_per_second = 1,235\n" in shown.stdout, shown
    assert "valid_loss 2.988, valid_perplexity 19.84, valid_mean_token_accuracy 0.4123" in shown.stdout, shown
    assert "2.172886" not in shown.stdout and "0.000199999" not in shown.stdout, shown


def test_jobs_metrics_table_fits_80_columns(project) -> None:
    project.quickstart()
    _job_in_state(project.root)
    table = project.cli("jobs", "metrics", "xbox-agent", env={"COLUMNS": "80"})
    assert table.code == 0, table
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, table
    assert lines[0].split() == ["type", "epoch", "step", "loss", "val_loss", "val_ppl", "val_acc", "lr", "tok/s"]
    epoch_row = next(line.split() for line in lines if line.startswith("epoch "))
    assert epoch_row == ["epoch", "3", "30", "0.1235", "1.877", "123,457", "0.6123"], table
    first_step = next(line.split() for line in lines if line.startswith("step "))
    assert first_step == ["step", "0.1", "1", "2.5", "1.94e-04", "1,236"], table
    # the full names and every field stay in json
    full = json.loads(project.cli("jobs", "metrics", "xbox-agent", "--format", "json").stdout)
    assert full[1]["grad_norm"] == 1.2345678 and full[-1]["valid_perplexity"] == 123456.789


def test_the_keys_hints_of_apply_and_regenerate_key_run_as_printed(fake_azure, tmp_path: Path, monkeypatch) -> None:
    """The quickstart on the Azure fakes (in-process, so the fakes answer): apply's
    `(keys: ...)` and regenerate-key's `See it with: ...` run as printed."""
    from azurefake.families.endpoints import endpoint_id, keys_of, teach
    from azurefake.families.workspaces import instant_sdk_waits
    from azurefake.fixtures import PRINCIPAL, RESOURCE_GROUP, SUBSCRIPTION
    from click.testing import CliRunner
    from test_azure_backend import quickstart

    from foundryctl.cli import cli, terraform_style

    instant_sdk_waits(monkeypatch, fake_azure)
    monkeypatch.chdir(quickstart(tmp_path))
    teach(fake_azure, tmp_path / "manifests" / "data" / "xbox_support.jsonl")  # its Evaluation scores the endpoint
    env = {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "FOUNDRYCTL_RESOURCE_GROUP": RESOURCE_GROUP,
           "FOUNDRYCTL_PRINCIPAL": PRINCIPAL, "NO_COLOR": "1", "COLUMNS": "200"}

    def run(*words: str):
        return CliRunner().invoke(cli, terraform_style(list(words)), env=env, catch_exceptions=False)

    applied = run("apply", "-auto-approve", "-f", "manifests/quickstart.yaml", "-var-file", "fake.yaml")
    assert applied.exit_code == 0, applied.output
    hint = _line_after(applied.output, "(keys: ").rstrip(")")
    assert hint == "foundryctl deployments keys xbox-agent -f manifests/quickstart.yaml --var-file fake.yaml"
    keys = run(*shlex.split(hint)[1:], "--format", "json")
    assert keys.exit_code == 0, keys.output
    expected = dict(keys_of(fake_azure, endpoint_id(fake_azure, "xbox-support", "xbox-agent")))
    assert json.loads(keys.output)["key1"] == expected["primaryKey"]

    rotated = run("deployments", "regenerate-key", "xbox-agent", "--key", "key2", "-f", "manifests/quickstart.yaml",
                  "--var-file", "fake.yaml")
    assert rotated.exit_code == 0, rotated.output
    again = run(*shlex.split(_line_after(rotated.output, "See it with: "))[1:])
    assert again.exit_code == 0 and "key2: " in again.output, again.output
