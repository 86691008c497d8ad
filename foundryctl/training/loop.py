"""The training loop: LoRA (or full) fine-tuning of a causal LM on encoded conversations.

Written for speed on small models and CPUs as much as GPUs:
- batches of similar lengths (little padding), built once per epoch from a seeded order;
- the language-model head runs only at positions that have a label: on chat data most
  positions are prompt, and the head (vocabulary x hidden) is a large share of a small
  model's compute;
- the loss is the mean over all label tokens of an optimizer step, however they are split
  into micro-batches (gradient accumulation weights each token alike);
- bf16 autocast on CUDA (LoRA), fp32 on the CPU (`precision` overrides); one forward and one backward per micro-batch.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundryctl.training.config import TrainingConfig
from foundryctl.training.data import IGNORE, Encoded, collate, encode_file, length_grouped_batches
from foundryctl.training.jobdir import CHECKPOINT_DONE, JobDir

RESULTS_COLUMNS = ["step", "epoch", "train_loss", "train_mean_token_accuracy", "valid_loss",
                   "valid_mean_token_accuracy", "valid_perplexity", "learning_rate", "tokens_per_second"]


class Canceled(Exception):
    """The job was asked to stop (SIGTERM/SIGINT); the last checkpoint stays."""


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def uses_bf16(config: TrainingConfig, device: str) -> bool:
    """Whether the run computes in bf16: by default LoRA on CUDA does; `precision` overrides
    (bf16 on the CPU is slower but exercises the same numerics)."""
    if config.precision == "auto":
        return device.startswith("cuda") and config.lora
    if config.precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {config.precision!r}")
    return config.precision == "bf16"


def load_model(config: TrainingConfig, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model_dir)
    # bf16 LoRA: the frozen base in bf16, the adapter in fp32 under bf16 autocast. A full
    # fine-tune keeps fp32 weights (AdamW on bf16 weights loses small updates) and autocasts.
    dtype = torch.bfloat16 if uses_bf16(config, device) and config.lora else torch.float32
    model = AutoModelForCausalLM.from_pretrained(config.model_dir, dtype=dtype)
    model.config.use_cache = False
    if config.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
    return model.to(device), tokenizer


def split_model(model: Any) -> tuple[Any, Any]:
    """(the transformer body that returns hidden states, the LM head) of a causal LM, through
    a peft wrapper if there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model, base.lm_head


def token_loss(body: Any, head: Any, batch: dict[str, Any]) -> tuple[Any, int, int]:
    """Summed cross-entropy over label positions, how many there are, how many were right.

    Hidden states are gathered at the positions whose next token is a label before the head
    runs, so the head's (vocabulary x hidden) matmul is done only where it counts, and the
    logits are never all held at once (see loss.py).
    """
    from foundryctl.training.loss import fused_head_loss

    hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE
    loss, correct = fused_head_loss(hidden[:, :-1][where], head.weight, head.bias, targets[where])
    return loss, int(where.sum()), int(correct)


def labelled_lm(model: Any) -> Any:
    """The model as one module whose forward is `token_loss`, so DistributedDataParallel
    (which needs the forward to go through the module it wraps) can wrap it."""
    import torch

    class LabelledLM(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any) -> tuple[Any, int, int]:
            body, head = split_model(self.inner)
            return token_loss(body, head, {"input_ids": input_ids, "attention_mask": attention_mask,
                                           "labels": labels})

    return LabelledLM(model)


@dataclass
class Distributed:
    """Where this process sits in a torchrun launch (world 1: not distributed)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
                   int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        """Element-wise sums over all processes (the values themselves when alone)."""
        if self.world == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    device: str = "cpu"


class Trainer:
    results_columns = RESULTS_COLUMNS  # results.csv, in this order

    def __init__(self, config: TrainingConfig, job: JobDir, log: Callable[[str], None] = print):
        self.config, self.job, self.log = config, job, log
        self.stop_requested = False
        self.dist = Distributed.from_env()
        self.resumed_tokens = 0  # tokens trained before the checkpoint a run resumed from
        self.trained_tokens = 0

    def request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    # -- pieces ----------------------------------------------------------------------------

    def _batches(self, examples: list[Encoded], epoch: int) -> list[list[int]]:
        # Every process builds the same list from the same seed and takes its share of each
        # optimizer step, so no data needs to be sent between them.
        return length_grouped_batches(examples, self.config.batch_size, seed=self.config.seed * 1009 + epoch)

    def evaluate(self, model: Any, examples: list[Encoded], pad_id: int, device: str) -> Evaluation:
        import torch

        body, head = split_model(model)
        model.eval()  # no dropout while measuring
        total_loss, total_tokens, total_correct = 0.0, 0, 0
        batches = length_grouped_batches(examples, self.config.batch_size, seed=0)
        with torch.no_grad(), self._autocast(device):
            for indices in batches[self.dist.rank::self.dist.world]:
                batch = _to(collate([examples[i] for i in indices], pad_id), device)
                loss, tokens, correct = token_loss(body, head, batch)
                total_loss += float(loss)
                total_tokens += tokens
                total_correct += correct
        model.train()
        total_loss, total_tokens, total_correct = self.dist.sum(total_loss, total_tokens, total_correct)
        tokens = max(total_tokens, 1)
        return Evaluation(total_loss / tokens, total_correct / tokens, int(total_tokens))

    def _autocast(self, device: str) -> Any:
        import contextlib

        import torch

        if uses_bf16(self.config, device):
            return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        import torch
        from transformers import get_scheduler

        config, job, dist = self.config, self.job, self.dist
        device = pick_device(config.device)
        if dist.world > 1:
            import torch.distributed

            torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")
            if device == "cuda":
                device = f"cuda:{dist.local_rank}"
                torch.cuda.set_device(dist.local_rank)
            dist.device = device
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.log(f"loading {config.base_model} from {config.model_dir} on {device}"
                 + (f" (process {dist.rank + 1} of {dist.world})" if dist.world > 1 else ""))
        model, tokenizer = load_model(config, device)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        train, train_stats = encode_file(tokenizer, config.training_file, config.max_seq_length)
        valid: list[Encoded] = []
        if config.validation_file:
            valid, _ = encode_file(tokenizer, config.validation_file, config.max_seq_length)
        if not train:
            raise ValueError("no training example has an assistant token left to learn from "
                             f"(max_seq_length {config.max_seq_length})")
        self.log(f"{len(train)} training examples ({train_stats.truncated} truncated, "
                 f"{train_stats.dropped} without trainable tokens dropped), {len(valid)} validation")

        per_step = config.gradient_accumulation_steps * dist.world  # batches per optimizer step
        steps_per_epoch = math.ceil(math.ceil(len(train) / config.batch_size) / per_step)
        total_steps = steps_per_epoch * config.epochs
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay,
                                      fused=device.startswith("cuda"))
        scheduler = get_scheduler(config.lr_scheduler, optimizer,
                                  num_warmup_steps=int(config.warmup_ratio * total_steps),
                                  num_training_steps=total_steps)
        forward = labelled_lm(model)
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            forward = DistributedDataParallel(forward, device_ids=[dist.local_rank] if device.startswith("cuda") else None)

        start_epoch, step = 0, 0
        checkpoint = job.latest_checkpoint()
        if checkpoint is not None:
            start_epoch, step = self._resume(checkpoint, model, optimizer, scheduler)
            self.log(f"resumed from {checkpoint.name}: epoch {start_epoch}, step {step}")
        elif valid:
            before = self.evaluate(model, valid, pad_id, device)
            self._record({"type": "eval", "step": 0, "epoch": 0, "valid_loss": before.loss,
                          "valid_perplexity": before.perplexity, "valid_mean_token_accuracy": before.accuracy})
            self.log(f"before training: validation loss {before.loss:.4f}, perplexity {before.perplexity:.2f}")
        if checkpoint is None:
            self._samples("before", model, tokenizer, device)

        self._status(state="Running", total_steps=total_steps, epochs=config.epochs, step=step,
                     epoch=start_epoch, device=device, examples=len(train), processes=dist.world)
        if self.stop_requested:  # asked to stop while loading: do not start
            raise Canceled()
        started = time.monotonic()
        trained_tokens = 0
        for epoch in range(start_epoch, config.epochs):
            model.train()
            batches = self._batches(train, epoch)
            epoch_loss, epoch_tokens, epoch_correct = 0.0, 0, 0
            for first in range(0, len(batches), per_step):
                if self.dist.sum(float(self.stop_requested))[0]:
                    raise Canceled()  # decided together, so no process waits for another
                group = batches[first:first + per_step]
                label_tokens = sum(train[i].trained_tokens for indices in group for i in indices)
                mine = [part for indices in group[dist.rank::dist.world]
                        for part in token_budget(indices, train, config.max_tokens_per_pass)]
                step_started = time.monotonic()
                step_loss, step_correct, step_tokens = 0.0, 0, 0
                for n, indices in enumerate(mine):
                    batch = _to(collate([train[i] for i in indices], pad_id), device)
                    sync = n == len(mine) - 1 or dist.world == 1
                    with self._autocast(device), (contextlib.nullcontext() if sync else forward.no_sync()):
                        loss, tokens, correct = forward(**batch)
                        # DDP averages gradients over processes; scaling by the world size
                        # makes the step's gradient the mean over all its label tokens.
                        (loss * dist.world / max(label_tokens, 1)).backward()
                    step_loss += float(loss.detach())
                    step_correct += correct
                    step_tokens += int(batch["attention_mask"].sum())
                if not mine and dist.world > 1:  # fewer batches than processes: join with zeros
                    dummy = _to(collate([train[group[0][0]]], pad_id), device)
                    with self._autocast(device):
                        loss, _, _ = forward(**dummy)
                    (loss * 0.0).backward()
                norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                step_loss, step_correct, step_tokens = self.dist.sum(step_loss, step_correct, step_tokens)
                elapsed = time.monotonic() - step_started
                trained_tokens += int(step_tokens)
                self.trained_tokens = self.resumed_tokens + trained_tokens
                epoch_loss += step_loss
                epoch_tokens += label_tokens
                epoch_correct += int(step_correct)
                rate = trained_tokens / max(time.monotonic() - started, 1e-9)
                remaining = (total_steps - step) * (time.monotonic() - started) / max(
                    step - start_epoch * steps_per_epoch, 1)
                self._record({"type": "step", "step": step, "epoch": epoch + min(1.0, (first + per_step) / len(batches)),
                              "train_loss": step_loss / max(label_tokens, 1),
                              "train_mean_token_accuracy": step_correct / max(label_tokens, 1),
                              "learning_rate": scheduler.get_last_lr()[0], "grad_norm": float(norm),
                              "tokens": int(step_tokens), "tokens_per_second": step_tokens / max(elapsed, 1e-9),
                              "elapsed": time.monotonic() - started})
                self._status(state="Running", step=step, epoch=epoch + 1, loss=step_loss / max(label_tokens, 1),
                             tokens_per_second=rate, eta_seconds=remaining)
            evaluation = self.evaluate(model, valid, pad_id, device) if valid else None
            summary = {"type": "epoch", "step": step, "epoch": epoch + 1,
                       "train_loss": epoch_loss / max(epoch_tokens, 1),
                       "train_mean_token_accuracy": epoch_correct / max(epoch_tokens, 1)}
            if evaluation is not None:
                summary.update(valid_loss=evaluation.loss, valid_perplexity=evaluation.perplexity,
                               valid_mean_token_accuracy=evaluation.accuracy)
            self._record(summary)
            if dist.main:
                self.log(f"epoch {epoch + 1}/{config.epochs}: train loss {summary['train_loss']:.4f}" + (
                    f", validation loss {evaluation.loss:.4f} (perplexity {evaluation.perplexity:.2f}, "
                    f"token accuracy {evaluation.accuracy:.3f})" if evaluation else ""))
            self._checkpoint(epoch + 1, step, model, optimizer, scheduler)
        self._samples("after", model, tokenizer, device)
        self._save_final(model, tokenizer)
        if dist.world > 1:
            import torch.distributed

            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        return {"steps": step, "tokens": self.resumed_tokens + trained_tokens}

    def _samples(self, when: str, model: Any, tokenizer: Any, device: str) -> None:
        """A few greedy answers to held-out prompts, for the report (process 0 only)."""
        from foundryctl.training import samples

        config = self.config
        source = config.validation_file or config.training_file
        if not self.dist.main or config.sample_generations <= 0:
            return
        prompts = samples.sample_prompts(source, config.sample_generations)
        started = time.monotonic()
        with self._autocast(device):
            answers = samples.generate(model, tokenizer, prompts, device)
        samples.record(self.job.samples, when, prompts, answers)
        self.log(f"{when} training: {len(answers)} sample answer(s) in {time.monotonic() - started:.1f}s")

    def _status(self, **changes: Any) -> None:
        if self.dist.main:
            self.job.write_status(**changes)

    # -- metrics, checkpoints, outputs ----------------------------------------------------

    def _record(self, row: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.job.metrics, "a") as out:
            out.write(json.dumps(row) + "\n")
        if row["type"] in ("step", "epoch", "eval"):
            new = not self.job.results.exists()
            with open(self.job.results, "a", newline="") as out:
                writer = csv.DictWriter(out, self.results_columns, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow({k: _round(row.get(k)) for k in self.results_columns})

    def _checkpoint(self, epoch: int, step: int, model: Any, optimizer: Any, scheduler: Any) -> None:
        import torch

        if not self.dist.main:
            self._barrier()
            return
        final = self.job.checkpoints / f"epoch-{epoch}"
        staging = self.job.checkpoints / f".epoch-{epoch}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(staging / "adapter" if self.config.lora else staging / "model")
        torch.save({"epoch": epoch, "step": step, "tokens": self.trained_tokens,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate()}, staging / "trainer_state.pt")
        (staging / CHECKPOINT_DONE).write_text(json.dumps({"epoch": epoch, "step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        self.job.prune_checkpoints(self.config.keep_checkpoints)
        self.log(f"checkpoint {final.name} saved")
        self._barrier()

    def _barrier(self) -> None:
        if self.dist.world > 1:
            import torch.distributed

            torch.distributed.barrier()

    def _resume(self, checkpoint: Path, model: Any, optimizer: Any, scheduler: Any) -> tuple[int, int]:
        import torch

        if self.config.lora:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            state = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
            set_peft_model_state_dict(model, state)
        else:
            from safetensors.torch import load_file

            for file in sorted((checkpoint / "model").glob("*.safetensors")):
                model.load_state_dict(load_file(str(file)), strict=False)
        saved = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
        if self.dist.main:
            self._forget_after(saved["step"])
        self.resumed_tokens = saved.get("tokens", 0)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(saved["python_rng"])
        return saved["epoch"], saved["step"]

    def _forget_after(self, step: int) -> None:
        """Drop metric rows of steps after the checkpoint: they are trained again."""
        kept = [row for row in self.job.read_metrics() if row.get("step", 0) <= step]
        temporary = self.job.metrics.with_suffix(".tmp")
        temporary.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(temporary, self.job.metrics)
        if self.job.results.exists():
            with open(self.job.results, newline="") as source:
                rows = [r for r in csv.DictReader(source) if int(float(r["step"] or 0)) <= step]
            with open(temporary, "w", newline="") as out:
                writer = csv.DictWriter(out, self.results_columns)
                writer.writeheader()
                writer.writerows(rows)
            os.replace(temporary, self.job.results)

    def _save_final(self, model: Any, tokenizer: Any) -> None:
        if not self.dist.main:
            return
        target = self.job.model
        staging = self.job.path / ".model.partial"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        if self.config.lora and self.config.merge_weights:
            merged = model.merge_and_unload()
            staging = self.job.path / ".merged.partial"
            shutil.rmtree(staging, ignore_errors=True)
            merged.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            shutil.rmtree(self.job.merged, ignore_errors=True)
            os.replace(staging, self.job.merged)


def token_budget(indices: list[int], examples: list[Encoded], budget: int) -> list[list[int]]:
    """Split a batch into passes of at most `budget` padded tokens (at least one example each).

    Activation memory grows with the padded tokens of a forward pass; a long batch done as
    several passes within the same optimizer step gives the same gradient (the loss is
    normalised by the step's label tokens) with a fraction of the memory.
    """
    ordered = sorted(indices, key=lambda i: -examples[i].length)
    passes: list[list[int]] = []
    for index in ordered:
        if passes and (len(passes[-1]) + 1) * examples[passes[-1][0]].length <= budget:
            passes[-1].append(index)
        else:
            passes.append([index])
    return passes


def _to(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()} if device != "cpu" else batch


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def install_signal_handlers(trainer: Trainer) -> None:
    signal.signal(signal.SIGTERM, trainer.request_stop)
    signal.signal(signal.SIGINT, trainer.request_stop)
