"""`foundryctl evals`: evaluations of a manifest, their metrics, baselines, gates and examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from foundryctl.cli.common import console, handle_errors, load_stack, manifest_options, one_record


@click.group()
def evals() -> None:
    """Inspect evaluations: metrics against baselines, gates, per-example answers."""


def _records(stack_args: dict[str, Any]) -> dict[str, Any]:
    with load_stack(stack_args, check_files=False) as stack:
        return {r.name: r for r in stack.state.records() if r.kind == "Evaluation"}


@evals.command("list")
@manifest_options
@handle_errors
def list_evals(stack_args: dict[str, Any]) -> None:
    """Every evaluation: what it scored, on how many examples, its gate."""
    from rich.table import Table

    from foundryctl.kinds.evaluation import describe_target

    table = Table(box=None, pad_edge=False)
    for column in ("EVALUATION", "TARGET", "EXAMPLES", "GATE", "METRICS"):
        table.add_column(column)
    for name, record in _records(stack_args).items():
        out = record.outputs
        table.add_row(name, describe_target(record.attributes), str(out.get("examples", "-")),
                      _verdict(out.get("gate") or {}),
                      ", ".join(f"{k} {_number(v)}" for k, v in (out.get("values") or {}).items()))
    console().print(table)


@evals.command("show")
@click.argument("name")
@click.option("--examples", "examples", type=int, default=None, is_flag=False, flag_value=10,
              help="Also print the first N examples' answers and scores (default 10).")
@click.option("--failed", is_flag=True, help="With --examples: only examples that scored below 1 on a metric.")
@click.option("--json", "as_json", is_flag=True, help="Print the results (and examples) as JSON.")
@manifest_options
@handle_errors
def show(stack_args: dict[str, Any], name: str, examples: int | None, failed: bool, as_json: bool) -> None:
    """An evaluation's latest run: each metric against its baselines, and the gate."""
    from rich.table import Table

    record = one_record(_records(stack_args), "Evaluation", name, "evaluation")
    out = record.outputs
    rows = _example_rows(out, examples, failed) if examples is not None else None
    if as_json:
        click.echo(json.dumps({"evaluation": record.address, **out,
                               **({"example_rows": rows} if rows is not None else {})}, indent=2, sort_keys=True))
        return
    from foundryctl.kinds.evaluation import describe_target

    say = console()
    say.print(f"[bold]{record.address}[/]  run {out.get('run')}  finished {out.get('finished_at')}")
    say.print(f"scored {describe_target(record.attributes)} ({out.get('model')}) on {out.get('examples')} "
              f"examples of Dataset.{record.attributes.get('data')} ({record.attributes.get('split')})"
              + (f"; {out['skipped_lines']} line(s) skipped" if out.get("skipped_lines") else ""))
    baselines = sorted(out.get("baselines") or {})
    table = Table(box=None, pad_edge=False)
    for column in ("METRIC", "VALUE", *(f"BASELINE.{b.upper()}" for b in baselines)):
        table.add_column(column, justify="right" if column != "METRIC" else "left")
    for metric, value in (out.get("values") or {}).items():
        table.add_row(metric, _number(value), *(_number((out["baselines"][b] or {}).get(metric)) for b in baselines))
    say.print(table)
    for why in (out.get("missing_baselines") or {}).values():
        say.print(f"[dim]no serving baseline: {why}[/]")
    gate = out.get("gate") or {}
    say.print(f"gate: {_verdict(gate)}")
    for condition in gate.get("conditions") or []:
        mark = "[green]✓[/]" if condition["passed"] else "[red]✗[/]"
        say.print(f"  {mark} {condition['text']}", markup=True, highlight=False)
    if out.get("examples_per_second"):
        say.print(f"[dim]{out['examples_per_second']:.2f} examples/s; results in {out.get('results')}[/]")
    for row in rows or []:
        say.print(f"\n[bold]#{row['index'] + 1}[/] {_clip(row['prompt'])}", highlight=False)
        say.print(f"  expected: {_clip(str(row.get('expected')))}", markup=False, highlight=False)
        say.print(f"  answer:   {_clip(row.get('answer', ''))}  [{row.get('finish_reason')}, "
                  f"{row.get('completion_tokens')} tokens]", markup=False, highlight=False)
        say.print("  " + ", ".join(f"{k} {_number(v)}" for k, v in (row.get("scores") or {}).items()),
                  markup=False, highlight=False)


def _example_rows(outputs: dict[str, Any], limit: int, failed: bool) -> list[dict[str, Any]]:
    path = Path(outputs.get("results") or "") / "examples.jsonl"
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        from foundryctl.errors import FoundryctlError

        raise FoundryctlError(f"the examples of this run are not readable at {path}",
                              hint="apply again to run the evaluation anew") from None
    if failed:
        rows = [r for r in rows if any(isinstance(v, (int, float)) and v < 1 for v in (r.get("scores") or {}).values())]
    return rows[:limit]


def _verdict(gate: dict[str, Any]) -> str:
    if not gate.get("conditions"):
        return "none"
    return "passed" if gate.get("passed") else "FAILED"


def _number(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4g}"


def _clip(text: str, width: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
