"""`foundryctl data validate`: the dataset gate on its own, for one or more JSONL files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from foundryctl.cli.common import console, handle_errors

if TYPE_CHECKING:
    from foundryctl.datasets import DatasetReport


@click.group()
def data() -> None:
    """Work with chat-completion datasets."""


@data.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--base-model", metavar="NAME",
              help="Count tokens with this model's tokenizer (catalog name, hf:ORG/NAME or path:DIR) "
                   "and check its context length.")
@click.option("--context-length", type=click.IntRange(1), metavar="TOKENS",
              help="Context length to check against (default: the base model's).")
@click.option("--epochs", type=click.IntRange(1, 10), default=1, show_default=True,
              help="Epochs, for the billed-token estimate.")
@click.option("--split", type=click.FloatRange(0, 0.5, min_open=True), metavar="FRACTION",
              help="Hold out this fraction for validation, as `validation: {split: ...}` would.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of --split.")
@click.option("--validation", "as_validation", is_flag=True,
              help="The files are validation data (one example is enough).")
@click.option("--max-problems", type=click.IntRange(0), default=1000, show_default=True,
              help="Problems listed per file; all are counted.")
@click.option("--task", type=click.Choice(["chat_completion", "text_classification"]),
              default="chat_completion", show_default=True,
              help="The format: conversations, or labelled text (`{\"text\": ..., \"label\": ...}`).")
@click.option("--labels", metavar="A,B,...",
              help="text_classification: the declared label set; any other label is an error.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@handle_errors
def validate_files(files: tuple[Path, ...], base_model: str | None, context_length: int | None,
                   epochs: int, split: float | None, seed: int, as_validation: bool, max_problems: int,
                   task: str, labels: str | None, output_format: str) -> None:
    """Check chat-completion JSONL FILES: every problem by line and category, token statistics
    and billed tokens. Exit status 1 when a file has errors, 0 otherwise (warnings allowed)."""
    from foundryctl.datasets import ValidationOptions, load_counter, validate_dataset
    from foundryctl.errors import FoundryctlError
    from foundryctl.models import parse_base_model

    ref = None
    if base_model:
        try:
            ref = parse_base_model(base_model, Path.cwd())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--base-model") from None
    counter = load_counter(ref)
    options = ValidationOptions(
        counter=counter, base_model=ref.name if ref else None,
        context_length=context_length or (ref.context_length if ref else None), epochs=epochs,
        split=(split, seed) if split else None, max_problems=max_problems,
        role="validation" if as_validation else "training", task=task,
        labels=tuple(label.strip() for label in labels.split(",") if label.strip()) if labels else None)
    reports = []
    for file in files:
        try:
            reports.append(validate_dataset(file, options))
        except OSError as exc:
            raise FoundryctlError(f"cannot read {file}: {exc.strerror or exc}") from None
    if output_format == "json":
        body = [r.to_dict() for r in reports]
        click.echo(json.dumps(body[0] if len(body) == 1 else body, indent=2))
    else:
        for report in reports:
            render_report(report)
    sys.exit(0 if all(r.valid for r in reports) else 1)


def render_report(report: DatasetReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    out.print(f"[bold]{escape(report.path)}[/]: {report.examples:,} valid example(s) on "
              f"{report.lines:,} line(s), {_size(report.size)}, sha256 {report.sha256[:16]}...")
    for problem in report.problems:
        colour = "red" if problem.severity == "error" else "yellow"
        where = f"{report.path}:{problem.line}" if problem.line else report.path
        out.print(f"{escape(where)}: [{colour}]{problem.severity}[/]: {escape(problem.message)} "
                  f"[dim]\\[{problem.category}][/]")
    if report.omitted:
        out.print(f"... and {report.omitted:,} more (raise --max-problems to list them)", style="dim")
    if report.examples:
        counting = "approximate" if not report.tokens_exact else "exact"
        table = Table(title=f"Statistics per example (tokens: {escape(report.token_counting)})",
                      title_justify="left", box=None, pad_edge=False)
        for column in ("", "min", "p10", "median", "p90", "max", "total"):
            table.add_column(column, justify="left" if not column else "right")
        classification = report.task == "text_classification"
        rows = [] if classification else [("messages", report.messages_per_example)]
        if report.token_counting != "skipped":
            rows += [(f"tokens ({counting})", report.total_tokens)]
            if not classification:
                rows += [(f"assistant tokens ({counting})", report.assistant_tokens)]
        for label, dist in rows:
            table.add_row(label, *(f"{v:,}" for v in (dist.min, dist.p10, dist.median, dist.p90,
                                                      dist.max, dist.total)))
        if rows:
            out.print(table)
        if classification:
            total = sum(report.label_counts.values()) or 1
            out.print("Labels: " + ", ".join(f"{escape(label)} {n:,} ({n / total:.0%})"
                                             for label, n in sorted(report.label_counts.items())))
        if report.token_counting != "skipped" and report.role == "training":
            clip = (f"; examples over {report.context_length:,} tokens count as {report.context_length:,}"
                    if report.context_length else "")
            approx = "about " if not report.tokens_exact else ""
            out.print(f"Billed training tokens: {approx}{report.billed_tokens_per_epoch:,} per epoch x "
                      f"{report.epochs} epoch(s) = {report.billed_tokens:,}{clip}")
        if report.split is not None:
            out.print(f"Split (fraction {report.split.fraction}, seed {report.split.seed}): "
                      f"{report.split.training_examples:,} training, "
                      f"{report.split.validation_examples:,} validation")
    errors, warnings = report.error_count, report.warning_count
    if errors:
        out.print(f"[bold red]Invalid:[/] {errors:,} error(s), {warnings:,} warning(s)")
    else:
        out.print(f"[bold green]Valid[/] ({warnings:,} warning(s))")


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)
