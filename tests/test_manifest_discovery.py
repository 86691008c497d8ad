"""Default manifest discovery (`-f .`): YAML files that are plainly not manifest files are
skipped, as Terraform skips files that are not `.tf`; when nothing is left, the error says
which files were skipped and why."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli

HUB = """\
version: 1
backend: {type: local, registration_delay: 0.1}
resources:
  - kind: Hub
    name: ft-hub
    location: eastus2
"""

PRE_COMMIT_HOOKS = """\
- id: foundryctl-validate
  name: foundryctl validate
  entry: foundryctl validate
  language: python
"""


def test_a_repository_root_with_pre_commit_hooks_validates(tmp_path: Path) -> None:
    (tmp_path / ".pre-commit-hooks.yaml").write_text(PRE_COMMIT_HOOKS)
    (tmp_path / "mkdocs.yml").write_text("site_name: docs\nnav: [index.md]\n")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    (tmp_path / "foundry.yaml").write_text(HUB)
    result = run_cli("validate", cwd=tmp_path)
    assert result.code == 0, result
    planned = run_cli("plan", cwd=tmp_path)
    assert planned.code == 0, planned
    assert "Hub.ft-hub" in planned.stdout


def test_a_manifest_split_into_files_keeps_every_part(tmp_path: Path) -> None:
    # a file holding only `variables:` (or only `policies:`) is part of the manifest
    (tmp_path / "main.yaml").write_text(HUB.replace("location: eastus2", "location: ${var.location}"))
    (tmp_path / "variables.yaml").write_text("variables:\n  location: westus3\n")
    result = run_cli("plan", cwd=tmp_path)
    assert result.code == 0, result
    assert "westus3" in result.stdout


def test_only_non_manifest_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".pre-commit-hooks.yaml").write_text(PRE_COMMIT_HOOKS)
    (tmp_path / "mkdocs.yml").write_text("site_name: docs\n")
    result = run_cli("validate", cwd=tmp_path)
    assert result.code == 1, result
    assert "This is a bug" not in result.output
    assert "no manifest files in directory ." in result.stderr
    assert ".pre-commit-hooks.yaml (it is a YAML list, not a mapping)" in result.stderr
    assert "mkdocs.yml (it has no top-level key of a manifest, such as version or resources)" in result.stderr
    assert "-f FILE" in result.stderr


def test_a_broken_yaml_file_is_reported_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "foundry.yaml").write_text(HUB + "  - kind: [unclosed\n")
    result = run_cli("validate", cwd=tmp_path)
    assert result.code == 1, result
    assert "foundry.yaml:" in result.stderr
    assert "no manifest files" not in result.stderr


def test_a_file_named_with_f_is_read_whatever_it_holds(tmp_path: Path) -> None:
    (tmp_path / "hooks.yaml").write_text(PRE_COMMIT_HOOKS)
    result = run_cli("validate", "-f", "hooks.yaml", cwd=tmp_path)
    assert result.code == 1, result
    assert "hooks.yaml" in result.stderr
    assert "skipped" not in result.stderr
    assert "This is a bug" not in result.output
