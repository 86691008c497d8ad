"""`foundryctl jobs`: fine-tune jobs of a manifest, read live from their job directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from foundryctl.cli.common import (
    console,
    handle_errors,
    load_stack,
    local_directory,
    manifest_options,
    one_record,
    print_log,
)


@click.group()
def jobs() -> None:
    """Inspect fine-tune jobs: status, logs and metrics."""


def _job_dirs(stack_args: dict[str, Any], *, deposed: bool = False) -> dict[str, tuple[Any, Any]]:
    """name -> (state record, JobDir) for every FineTuneJob in state: its current run (the
    one a replacement is training, while it does). With `deposed`, also the old runs a
    replacement has not deleted yet, as `NAME (deposed)`."""
    from foundryctl.plan.model import is_deposed

    found: dict[str, tuple[Any, Any]] = {}
    with load_stack(stack_args, check_files=False) as stack:
        records = [r for r in stack.state.records() if r.kind == "FineTuneJob"]
        for record in sorted(records, key=lambda r: (is_deposed(r.address), r.address)):
            if is_deposed(record.address) and not deposed:
                continue
            name = record.name + (" (deposed)" if is_deposed(record.address) else "")
            found.setdefault(name, (record, _job_dir(stack, record)))
    return found


def _job_dir(stack: Any, record: Any) -> Any:
    """The job directory of a local job (None: trained on Azure). A run apply is creating has
    no outputs in state yet: the control plane knows its directory."""
    from foundryctl.backends.base import Target
    from foundryctl.errors import FoundryctlError
    from foundryctl.training.jobdir import JobDir

    if record.outputs.get("job_dir"):
        return JobDir(Path(record.outputs["job_dir"]))
    if stack.manifest.backend.type != "local" or record.attributes.get("runner", "local") != "local":
        return None
    observed = stack.backend.handler("FineTuneJob").read(
        Target(record.address, record.kind, record.name, record.attributes, record.backend_id))
    if observed is None or not observed.outputs.get("job_dir"):
        raise FoundryctlError(f"{record.address} is being created ({record.status.value}): its training "
                              "has not started yet", hint="try again in a few seconds")
    return JobDir(Path(observed.outputs["job_dir"]))


def _one(stack_args: dict[str, Any], name: str) -> tuple[Any, Any]:
    """(state record, JobDir) of a local job's current run; (record, None) of one Azure runs."""
    return one_record(_job_dirs(stack_args, deposed=name.endswith(" (deposed)")), "FineTuneJob", name,
                      "fine-tune job")


@jobs.command("list")
@manifest_options
@handle_errors
def list_jobs(stack_args: dict[str, Any]) -> None:
    """Every job: state, progress, last validation loss, model."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("JOB", "STATE", "EPOCH", "STEP", "VALID LOSS", "TOKENS/S", "MODEL"):
        table.add_column(column)
    for name, (record, directory) in _job_dirs(stack_args, deposed=True).items():
        status = directory.read_status() if directory else {}
        state = directory.state() if directory else record.attributes.get("status", record.status.value)
        epochs = directory.read_metrics("epoch") if directory else []
        model = record.outputs.get("model") or {}
        table.add_row(name, state, f"{status.get('epoch', 0)}/{status.get('epochs', '?')}",
                      f"{status.get('step', 0)}/{status.get('total_steps', '?')}",
                      f"{epochs[-1]['valid_loss']:.4f}" if epochs and epochs[-1].get("valid_loss") is not None else "",
                      f"{status['tokens_per_second']:,.0f}" if status.get("tokens_per_second") else "",
                      f"{model.get('name')}:{model.get('version')}" if model else "")
    console().print(table)


@jobs.command("show")
@manifest_options
@click.argument("name")
@handle_errors
def show_job(stack_args: dict[str, Any], name: str) -> None:
    """One job: status, configuration, evaluations and where its files are."""
    record, directory = _one(stack_args, name)
    out = console()
    if directory is None:  # trained on Azure: what state recorded
        out.print(f"[bold]{record.address}[/]  {record.attributes.get('status', '')}  ({record.backend_id})")
        for key in ("status", "error", "studio_url"):
            if record.outputs.get(key) is not None:
                out.print(f"  {key} = {record.outputs[key]}", markup=False)
        model = record.outputs.get("model")
        if model:
            out.print(f"  model = {model['name']}:{model['version']} ({model['id']})", markup=False)
        return
    status = directory.read_status()
    out.print(f"[bold]{record.address}[/]  {directory.state()}  ({record.backend_id})")
    config = _read_json(directory.config)
    shown = {**{key: config.get(key) for key in ("base_model", "batch_size", "learning_rate")},
             **{key: status.get(key) for key in ("epoch", "epochs", "step", "total_steps", "device", "examples",
                                                 "loss", "tokens_per_second", "error")}}
    for key, value in shown.items():
        if value is not None:
            out.print(f"  {key} = {number_text(key, value)}", markup=False)
    out.print(f"  job_dir = {directory.path}", markup=False)
    for row in directory.read_metrics("eval") + directory.read_metrics("epoch"):
        values = ", ".join(f"{k} {number_text(k, row[k])}" for k in (
            "train_loss", "valid_loss", "valid_perplexity", "valid_mean_token_accuracy") if row.get(k) is not None)
        out.print(f"  epoch {row['epoch']} (step {row['step']}): {values}", markup=False)
    model = record.outputs.get("model")
    if model:
        out.print(f"  model = {model['name']}:{model['version']} ({model['id']})", markup=False)
    if directory.report.exists():
        out.print(f"  report = {directory.report}", markup=False)


@jobs.command("logs")
@manifest_options
@click.argument("name")
@click.option("--follow", "-F", is_flag=True, help="Keep printing new lines until the job ends.")
@handle_errors
def job_logs(stack_args: dict[str, Any], name: str, follow: bool) -> None:
    """The job's training log."""
    from foundryctl.training.jobdir import INTERRUPTED, TERMINAL

    record, directory = _one(stack_args, name)
    directory = local_directory(record, directory, "its logs are in Azure AI Foundry")
    print_log(directory.log, follow=follow, finished=lambda: directory.state() in TERMINAL | {INTERRUPTED})


@jobs.command("metrics")
@manifest_options
@click.argument("name")
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@handle_errors
def job_metrics(stack_args: dict[str, Any], name: str, output_format: str) -> None:
    """Per-step and per-epoch metrics (results.csv is Azure's shape)."""
    record, directory = _one(stack_args, name)
    rows = _backend_metric_rows(stack_args, record) if directory is None else None
    if rows is None:
        directory = local_directory(record, directory, "its metrics are in Azure AI Foundry")
        if output_format == "csv":
            click.echo(directory.results.read_text() if directory.results.exists() else "", nl=False)
            return
        rows = directory.read_metrics()
    elif output_format == "csv":
        fields = sorted({k for row in rows for k in row})
        click.echo(",".join(fields))
        for row in rows:
            click.echo(",".join("" if row.get(f) is None else str(row[f]) for f in fields))
        return
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    # Short headers so that the table fits 80 columns; json and csv have every field, named in full.
    table = Table(box=None, pad_edge=False, caption="(all fields, named in full: --format json or csv)",
                  caption_justify="left")
    for header, _ in METRIC_COLUMNS:
        table.add_column(header, no_wrap=True, justify="left" if header == "type" else "right")
    for row in rows:
        table.add_row(*(number_text(key, row.get(key)) for _, key in METRIC_COLUMNS))
    console().print(table)


def _backend_metric_rows(stack_args: dict[str, Any], record: Any) -> list[dict[str, Any]] | None:
    """A job on Azure: its metrics, read from Azure now (a Foundry job's results file, a hub
    job's MLflow history); None where the backend keeps none (the local runner's files)."""
    from foundryctl.backends.base import Target

    with load_stack(stack_args, check_files=False) as stack:
        handler = stack.backend.handler("FineTuneJob")
        metric_rows = getattr(handler, "metric_rows", None)
        if metric_rows is None:
            return None
        return metric_rows(Target(record.address, record.kind, record.name, record.attributes, record.backend_id))


# (header, metrics.jsonl field) of `jobs metrics`' table
METRIC_COLUMNS = (("type", "type"), ("epoch", "epoch"), ("step", "step"), ("loss", "train_loss"),
                  ("val_loss", "valid_loss"), ("val_ppl", "valid_perplexity"),
                  ("val_acc", "valid_mean_token_accuracy"), ("lr", "learning_rate"), ("tok/s", "tokens_per_second"))


def number_text(key: str, value: Any) -> str:
    """A metric as people read it: 4 significant digits, a learning rate in scientific
    notation, rates and large numbers as whole numbers with thousands separators."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if "learning_rate" in key:
        return f"{value:.2e}"
    if isinstance(value, int):
        return str(value)
    if "per_second" in key or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
