"""Content filter quality: precision and recall per category on the labelled set.

Runs the offline classifier (or Azure AI Content Safety, with a key) over
tests/data/content_filter/labelled.jsonl and prints, per split, the scores of the decision
the endpoint makes (filtered at the threshold, medium by default) and of "any severity above
safe", plus the classifier's speed.

    python benchmarks/bench_content_filter.py                 # text tables
    python benchmarks/bench_content_filter.py --json          # the whole evaluation as JSON
    python benchmarks/bench_content_filter.py --errors        # and the texts it got wrong
    CONTENT_SAFETY_KEY=... python benchmarks/bench_content_filter.py \\
        --classifier azure --endpoint https://NAME.cognitiveservices.azure.com
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from foundryctl.serving.content_filter import (
    CATEGORIES,
    FilterPolicy,
    evaluate,
    load_classifier,
    load_examples,
)

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "content_filter" / "labelled.jsonl"
DECISIONS = {"filtered": "filtered at the threshold", "any": "any severity above safe"}


def table(scores: dict, title: str) -> str:
    header = (f"  {'category':<10} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}"
              f" {'TP':>4} {'FP':>4} {'FN':>4}")
    lines = [title, header]
    rows = [*((c, scores["categories"][c]) for c in CATEGORIES), ("overall", scores["overall"]),
            ("texts", scores["texts"])]
    for name, s in rows:
        lines.append(f"  {name:<10} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f} {s['support']:>8}"
                     f" {s['tp']:>4} {s['fp']:>4} {s['fn']:>4}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="labelled JSONL (default: the test set)")
    parser.add_argument("--threshold", default="medium", choices=("low", "medium", "high"))
    parser.add_argument("--classifier", default="offline", choices=("offline", "azure"))
    parser.add_argument("--endpoint", help="Azure AI Content Safety endpoint (--classifier azure)")
    parser.add_argument("--key-env", default="CONTENT_SAFETY_KEY", help="variable holding the Azure key")
    parser.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    parser.add_argument("--errors", action="store_true", help="list the texts the decision got wrong")
    args = parser.parse_args()

    examples = load_examples(args.data)
    classifier = load_classifier({"classifier": args.classifier, "azure_endpoint": args.endpoint,
                                  "azure_key_env": args.key_env})
    policy = FilterPolicy(threshold=args.threshold)
    started = time.perf_counter()
    result = evaluate(classifier, examples, policy)
    elapsed = time.perf_counter() - started
    result["classifier"] = classifier.name
    result["microseconds_per_text"] = round(elapsed / len(examples) * 1e6, 1)
    if not args.errors:
        result.pop("errors")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    print(f"{classifier.name} classifier, {len(examples)} labelled texts from {args.data.name}, "
          f"threshold {args.threshold}, {result['microseconds_per_text']} us per text")
    for split, scores in [*result["splits"].items(), ("all", result)]:
        for decision, description in DECISIONS.items():
            print()
            print(table(scores[decision], f"{split} ({scores['examples']} texts): {description}"))
        print(f"  exact severity agreement: {scores['exact_severity']:.3f}")
    if args.errors:
        print("\nwrong at the threshold (label -> predicted):")
        for error in result["errors"]:
            wrong = ", ".join(f"{c} {v['label']}->{v['predicted']}" for c, v in error["categories"].items())
            print(f"  [{error['split']}] {error['text']!r}: {wrong}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
