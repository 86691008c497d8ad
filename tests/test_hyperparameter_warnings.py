"""validate warns, at the value's file:line, about hyperparameters Azure accepts but that
rarely train well (a learning_rate_multiplier of 9.5 passed silently before)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, run_cli


def _quickstart(root: Path, multiplier: str) -> Path:
    shutil.copytree(REPO / "manifests" / "data", root / "data")
    text = (REPO / "manifests" / "quickstart.yaml").read_text()
    assert "learning_rate_multiplier: 1.0" in text
    manifest = root / "foundry.yaml"
    manifest.write_text(text.replace("learning_rate_multiplier: 1.0", f"learning_rate_multiplier: {multiplier}"))
    return manifest


def _line_of(manifest: Path, needle: str) -> int:
    return next(n for n, line in enumerate(manifest.read_text().splitlines(), 1) if needle in line)


def test_a_multiplier_of_9_5_is_a_warning_at_its_line(tmp_path: Path) -> None:
    manifest = _quickstart(tmp_path, "9.5")
    result = run_cli("validate", "-f", "foundry.yaml", cwd=tmp_path)
    assert result.code == 0, result  # a warning: Azure would accept it
    line = _line_of(manifest, "learning_rate_multiplier: 9.5")
    assert (f"foundry.yaml:{line}:33: warning: FineTuneJob.xbox-agent: learning_rate_multiplier 9.5 gives a "
            "learning rate of 0.0095 (9.5 x the base 0.001 of SmolLM2-135M-Instruct), which is likely to "
            "diverge") in result.stderr
    assert "Azure accepts 0-10, but 0.1-4 is the usual range" in result.stderr
    assert "hint: start from 1.0" in result.stderr


def test_a_tiny_multiplier_barely_trains(tmp_path: Path) -> None:
    _quickstart(tmp_path, "0.01")
    result = run_cli("validate", "-f", "foundry.yaml", cwd=tmp_path)
    assert result.code == 0, result
    assert "learning_rate_multiplier 0.01 gives a learning rate of 1e-05" in result.stderr
    assert "barely changes the model" in result.stderr


@pytest.mark.parametrize("multiplier", ["0.1", "1.0", "4"])
def test_usual_multipliers_are_quiet(tmp_path: Path, multiplier: str) -> None:
    _quickstart(tmp_path, multiplier)
    result = run_cli("validate", "-f", "foundry.yaml", cwd=tmp_path)
    assert result.code == 0, result
    assert "learning_rate_multiplier" not in result.stderr


def test_over_azure_s_limit_stays_an_error(tmp_path: Path) -> None:
    _quickstart(tmp_path, "11")
    result = run_cli("validate", "-f", "foundry.yaml", cwd=tmp_path)
    assert result.code == 1, result
    assert "learning_rate_multiplier" in result.stderr
    assert "This is a bug" not in result.output
