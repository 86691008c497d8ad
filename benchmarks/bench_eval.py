"""Evaluation throughput: the same examples scored batched through the engine against one
request at a time.

Both sides load SmolLM2-135M-Instruct once into one serving engine and answer the same held-out
Xbox prompts greedily (so the same tokens): `batched` submits every prompt at once and the engine
decodes them together (what an Evaluation does), `sequential` waits for each answer before the
next prompt (what a loop over an endpoint without concurrency does). Reported: examples/s and
completion tokens/s of each, the speed-up, and whether both produced the same answers.

    python benchmarks/bench_eval.py [--examples 32] [--max-tokens 48] [--batch 16] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16, help="the engine's max_batch_size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from foundryctl.evaluation.examples import read_cases
    from foundryctl.evaluation.predictors import EnginePredictor, GenerationSettings
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import find_model
    from foundryctl.serving.engine import Engine

    cases, _ = read_cases(REPO / "manifests" / "data" / "xbox_support.jsonl", "chat_completion", args.examples)
    engine = Engine.load(str(find_model(parse_base_model("SmolLM2-135M-Instruct"))), device="cpu",
                         max_batch_size=args.batch)
    settings = GenerationSettings(max_tokens=args.max_tokens, temperature=0.0)
    try:
        EnginePredictor(engine).predict(cases[:2], settings, lambda done, total: None)  # warm-up
        sides = {}
        for name, sequential in (("batched", False), ("sequential", True)):
            started = time.perf_counter()
            predictions = EnginePredictor(engine, sequential=sequential).predict(
                cases, settings, lambda done, total: None)
            seconds = time.perf_counter() - started
            sides[name] = {"seconds": seconds, "examples_per_s": len(cases) / seconds,
                           "tokens_per_s": sum(p.completion_tokens for p in predictions) / seconds,
                           "answers": [p.text for p in predictions]}
    finally:
        engine.close()
    report = {"examples": len(cases), "max_tokens": args.max_tokens, "max_batch_size": args.batch,
              "speedup": sides["batched"]["examples_per_s"] / sides["sequential"]["examples_per_s"],
              "same_answers": sides["batched"]["answers"] == sides["sequential"]["answers"],
              **{name: {k: v for k, v in side.items() if k != "answers"} for name, side in sides.items()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(cases)} examples, max_tokens {args.max_tokens}, engine max_batch_size {args.batch}")
    for name in ("batched", "sequential"):
        side = report[name]
        print(f"  {name:<10} {side['examples_per_s']:7.2f} examples/s  {side['tokens_per_s']:8.1f} tokens/s  "
              f"({side['seconds']:.1f} s)")
    print(f"  batched is {report['speedup']:.2f}x sequential; same answers: {report['same_answers']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
