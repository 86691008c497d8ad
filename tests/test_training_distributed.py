"""More than one process goes through torchrun: the same job run as two processes (gloo on
the CPU here; NCCL with one process per GPU on a CUDA machine) takes the same optimizer steps
as one process accumulating the same batches."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import require

from foundryctl.training.config import TrainingConfig, launch_command
from foundryctl.training.jobdir import JobDir

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "manifests" / "data" / "xbox_support.jsonl"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    try:
        return find_model(parse_base_model("SmolLM2-135M-Instruct"))
    except (ModelNotAvailable, ImportError) as exc:
        require(f"SmolLM2 is not available: {exc}")
        raise


def run_job(root: Path, model_dir: Path, processes: int, accumulation: int) -> JobDir:
    lines = DATA.read_text().splitlines()
    root.mkdir(parents=True)
    (root / "train.jsonl").write_text("\n".join(lines[:8]) + "\n")
    (root / "valid.jsonl").write_text("\n".join(lines[60:62]) + "\n")
    job = JobDir(root / "job")
    job.path.mkdir()
    TrainingConfig(model_dir=str(model_dir), base_model="SmolLM2-135M-Instruct",
                   training_file=str(root / "train.jsonl"), validation_file=str(root / "valid.jsonl"),
                   output_model="x", epochs=1, batch_size=2, learning_rate=2e-3, max_seq_length=96,
                   lora_dropout=0.0, warmup_ratio=0.0, lr_scheduler="linear",
                   gradient_accumulation_steps=accumulation, device="cpu",
                   processes=processes).save(job.config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(launch_command(job.path, processes), capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return job


def test_two_processes_under_torchrun_match_one_process_accumulating(tmp_path: Path, model_dir: Path) -> None:
    single = run_job(tmp_path / "one", model_dir, processes=1, accumulation=2)
    double = run_job(tmp_path / "two", model_dir, processes=2, accumulation=1)

    one, two = single.read_metrics("step"), double.read_metrics("step")
    assert [r["step"] for r in two] == [1, 2]  # 4 batches, 2 per optimizer step; logged once
    assert [r["step"] for r in one] == [1, 2]
    for a, b in zip(one, two):
        assert a["tokens"] == b["tokens"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert double.read_metrics("epoch")[0]["valid_loss"] == pytest.approx(
        single.read_metrics("epoch")[0]["valid_loss"], rel=1e-4)
    status = double.read_status()
    assert status["state"] == "Completed" and status["processes"] == 2
    assert (double.model / "adapter_model.safetensors").exists()
    assert len(double.checkpoint_dirs()) == 1
    assert json.loads(double.config.read_text())["processes"] == 2
