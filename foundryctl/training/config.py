"""A job's resolved configuration: everything the runner needs, written to the job directory."""

from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from foundryctl.private_files import write_private


@dataclass
class TrainingConfig:
    model_dir: str  # Hugging Face layout: config.json, weights, tokenizer
    base_model: str  # as the manifest wrote it
    training_file: str
    validation_file: str | None
    output_model: str
    epochs: int = 3
    batch_size: int = 4
    learning_rate: float = 1e-4  # base rate x multiplier, already applied
    seed: int = 0
    lora: bool = True  # False: full fine-tune
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_seq_length: int = 2048
    gradient_accumulation_steps: int = 1
    max_tokens_per_pass: int = 1024  # padded tokens per forward pass (memory), not the batch size
    warmup_ratio: float = 0.1
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    merge_weights: bool = False  # also write base + adapter merged into plain weights
    keep_checkpoints: int = 3
    device: str = "auto"  # auto, cpu, cuda
    precision: str = "auto"  # auto (bf16 for LoRA on CUDA, else fp32), bf16, fp32
    processes: int = 1  # >1: started under torchrun, one process per GPU
    sample_generations: int = 3  # validation prompts answered before and after training (report)
    task: str = "chat_completion"  # or text_classification (training/classification.py)
    labels: list[str] | None = None  # text_classification: the declared label set, else inferred

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrainingConfig:
        return cls(**json.loads(path.read_text()))


def gpu_count() -> int:
    """NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES, else the device nodes), without
    importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(glob.glob("/dev/nvidia[0-9]*"))


def launch_command(job_dir: Path, processes: int) -> list[str]:
    """How to start a job: one process, or torchrun with one process per GPU."""
    entry = ["-m", "foundryctl.training.run", str(job_dir)]
    if processes <= 1:
        return [sys.executable, *entry]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", *entry]
