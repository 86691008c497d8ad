"""Pre-merge CI benchmark: `foundryctl validate` of a 1,000-resource manifest with 20 dataset
files, and the CLI's start-up (`import foundryctl` + `--help`).

The manifest is what a platform team's repository grows into: 20 projects in hubs, each with
a role assignment, a Dataset (a real chat JSONL file of 150 conversations), a FineTuneJob on
SmolLM2-135M-Instruct and a Deployment, plus more projects and role assignments up to 1,000
resources, and policies (allowed regions and base models, max epochs, content filter on). Every
run is a fresh CLI process, as in CI; each figure is the median of --repeat runs, with the
first (cold) run reported separately.

    python benchmarks/bench_validate.py [--repeat 5] [--json]

Targets (this 2-core machine): validate under 3 s; import + --help under 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = 20
RESOURCES = 1000
TOPICS = ["controller", "console", "Game Pass", "account", "headset", "download", "cloud save", "network"]


def write_dataset(path: Path, seed: int, examples: int = 150) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(examples):
            topic = rng.choice(TOPICS)
            words = " ".join(rng.choice(["please", "help", "again", "today", "still", "now"]) for _ in range(12))
            out.write(json.dumps({"messages": [
                {"role": "system", "content": "You are an Xbox support agent."},
                {"role": "user", "content": f"My {topic} is not working ({i}). {words}?"},
                {"role": "assistant", "content": f"Let's fix your {topic}: restart it, check for updates, "
                                                 f"then sign in again. {words}."}]}) + "\n")


def write_manifest(directory: Path) -> Path:
    lines = ["version: 1", "backend: {type: local}", "variables:", "  location: eastus2",
             "policies:",
             "  allowed_regions: {regions: [eastus2], enforcement: mandatory}",
             "  allowed_base_models: {models: [SmolLM2-135M-Instruct], enforcement: mandatory}",
             "  max_epochs: {max: 5, enforcement: advisory}",
             "  content_filter: {enforcement: mandatory}",
             "resources:",
             "  - kind: ProviderRegistration", "    name: network", "    namespace: Microsoft.Network"]
    count = 1
    (directory / "data").mkdir()
    unit = 0
    while count < RESOURCES:
        hub = f"hub-{unit:03d}"
        lines += ["  - kind: Hub", f"    name: {hub}", "    location: ${var.location}"]
        count += 1
        for p in range(4):
            if count + 2 > RESOURCES:
                break
            project = f"prj-{unit:03d}-{p}"
            lines += ["  - kind: Project", f"    name: {project}", f"    hub: {hub}",
                      "  - kind: RoleAssignment", f"    name: dev-{unit:03d}-{p}",
                      f"    principal: user-{unit % 50}@contoso.com", "    role: Azure AI Developer",
                      f"    scope: {{project: {project}}}"]
            count += 2
            index = unit * 4 + p
            if index < DATASETS and count + 3 <= RESOURCES:
                write_dataset(directory / "data" / f"chat-{index:02d}.jsonl", index)
                lines += ["  - kind: Dataset", f"    name: chat-{index:02d}", f"    project: {project}",
                          f"    path: data/chat-{index:02d}.jsonl", "    validation: {split: 0.1, seed: 7}",
                          "  - kind: FineTuneJob", f"    name: agent-{index:02d}", f"    project: {project}",
                          "    base_model: SmolLM2-135M-Instruct", f"    training_data: chat-{index:02d}",
                          "    hyperparameters: {epochs: 3, max_seq_length: 512}",
                          "  - kind: Deployment", f"    name: agent-{index:02d}", f"    project: {project}",
                          f"    model: {{job: agent-{index:02d}}}"]
                count += 3
        unit += 1
    path = directory / "foundry.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(args: list[str], cwd: Path) -> tuple[float, int, str]:
    started = time.perf_counter()
    process = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, process.returncode, process.stdout + process.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        manifest = write_manifest(root)
        resources = manifest.read_text().count("  - kind: ")
        validate = [timed(["-m", "foundryctl", "validate", "-f", manifest.name], root) for _ in range(args.repeat + 1)]
        for _, code, output in validate:
            if code != 0:
                print(output[-3000:], file=sys.stderr)
                return 1
        help_runs = [timed(["-m", "foundryctl", "--help"], root) for _ in range(args.repeat + 1)]
        imports = subprocess.run([sys.executable, "-X", "importtime", "-m", "foundryctl", "--help"], cwd=root,
                                 capture_output=True, text=True).stderr
    heavy = sorted({line.rsplit("|", 1)[-1].strip().split(".")[0] for line in imports.splitlines()
                    if line.rsplit("|", 1)[-1].strip().split(".")[0] in
                    ("pydantic", "yaml", "rich", "deepdiff", "sqlite3", "torch", "transformers", "azure")})
    report = {
        "resources": resources, "dataset_files": DATASETS,
        "validate_cold_s": validate[0][0], "validate_median_s": statistics.median(t for t, _, _ in validate[1:]),
        "help_cold_s": help_runs[0][0], "help_median_s": statistics.median(t for t, _, _ in help_runs[1:]),
        "heavy_modules_imported_by_help": heavy,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"validate, {resources} resources with {DATASETS} dataset files (policies on), fresh process:")
    print(f"  cold {report['validate_cold_s']:.2f} s, median of {args.repeat} {report['validate_median_s']:.2f} s "
          "(target < 3 s)")
    print("import foundryctl + --help, fresh process:")
    print(f"  cold {report['help_cold_s']:.3f} s, median of {args.repeat} {report['help_median_s']:.3f} s "
          "(target < 0.3 s)")
    print(f"  heavy modules imported by --help: {', '.join(heavy) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
