"""`foundryctl deployments`: the endpoints of a manifest, their keys and logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from foundryctl.cli.common import (
    console,
    handle_errors,
    local_directory,
    manifest_options,
    one_record,
    print_log,
    records_in_state,
    runnable,
)


@click.group()
def deployments() -> None:
    """Inspect deployments: status, endpoint, keys and logs."""


def deployment_dirs(stack_args: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """name -> (state record, DeploymentDir) for every Deployment in state, and every
    FoundryDeployment the local backend serves."""
    from foundryctl.serving.deploydir import DeploymentDir

    records = {name: r for name, r in records_in_state(stack_args, "Deployment", "FoundryDeployment").items()
               if r.kind == "Deployment" or r.outputs.get("directory")}
    return {name: (r, DeploymentDir(Path(r.outputs["directory"])) if r.outputs.get("directory") else None)
            for name, r in records.items()}


def one_deployment(stack_args: dict[str, Any], name: str) -> tuple[Any, Any]:
    """(state record, DeploymentDir) of a local deployment; (record, None) of one the backend
    serves (an Azure serverless endpoint)."""
    return one_record(deployment_dirs(stack_args), "Deployment", name, "deployment")


def _backend_handler(stack_args: dict[str, Any], record: Any, action: Any) -> Any:
    """Run `action(handler, target)` with the backend's Deployment handler, for a deployment
    the backend serves (Azure keeps the keys)."""
    from foundryctl.backends.base import Target
    from foundryctl.cli.common import load_stack
    from foundryctl.errors import FoundryctlError

    with load_stack(stack_args, check_files=False) as stack:
        handler = stack.backend.handler("Deployment")
        if not hasattr(handler, "keys"):  # a local deployment whose server was never set up
            raise FoundryctlError(f"{record.address} has no endpoint directory recorded",
                                  hint="apply it first")
        target = Target(record.address, record.kind, record.name, record.attributes, record.backend_id)
        return action(handler, target)


def deployment_keys(stack_args: dict[str, Any], record: Any, directory: Any) -> dict[str, str]:
    """{"key1", "key2"}: from the local deployment directory, or asked of the backend."""
    if directory is not None:
        return directory.keys()
    primary, secondary = _backend_handler(stack_args, record, lambda handler, target: handler.keys(target))
    return {"key1": primary, "key2": secondary}


@deployments.command("list")
@manifest_options
@handle_errors
def list_deployments(stack_args: dict[str, Any]) -> None:
    """Every deployment: live status, endpoint, model, content filter."""
    from rich.table import Table

    from foundryctl.backends.local.server_process import server_state

    table = Table(box=None, pad_edge=False)
    for column in ("DEPLOYMENT", "STATUS", "ENDPOINT", "MODEL", "CONTENT FILTER"):
        table.add_column(column)
    for name, (record, directory) in deployment_dirs(stack_args).items():
        config = directory.read_config() if directory else None
        table.add_row(name, server_state(directory) if directory else record.attributes.get("status", ""),
                      record.outputs.get("endpoint") or "", _model_name(record.outputs.get("model_id")),
                      _filter_summary(config.content_filter if config else record.attributes.get("content_filter") or {}))
    console().print(table)


@deployments.command("show")
@manifest_options
@click.argument("name")
@handle_errors
def show_deployment(stack_args: dict[str, Any], name: str) -> None:
    """One deployment: endpoint, model, filter, process and the last sample answer."""
    from foundryctl.backends.local.server_process import server_state

    record, directory = one_deployment(stack_args, name)
    out = console()
    if directory is None:  # served by the backend: what state recorded
        out.print(f"[bold]{record.address}[/]  {record.attributes.get('status', '')}  ({record.backend_id})")
        rows = {"endpoint": record.outputs.get("endpoint"), "model": record.outputs.get("model_id"),
                "content_filter": _filter_summary(record.attributes.get("content_filter") or {}),
                "provisioning_state": record.outputs.get("provisioning_state"),
                "keys": runnable(f"foundryctl deployments keys {record.name}")}
    else:
        config = directory.read_config()
        status = directory.read_status()
        out.print(f"[bold]{record.address}[/]  {server_state(directory)}  ({record.backend_id})")
        rows = {"endpoint": record.outputs.get("endpoint"), "model": record.outputs.get("model_id"),
                "checkpoint": (config.checkpoint if config else None) or record.outputs.get("checkpoint"),
                "adapter": config.adapter_dir if config else None,
                "content_filter": _filter_summary(config.content_filter if config else {}),
                "pid": status.get("pid"), "log": str(directory.log),
                "keys": runnable(f"foundryctl deployments keys {record.name}")}
    for key, value in rows.items():
        if value is not None:
            out.print(f"  {key} = {value}", markup=False)
    sample = record.outputs.get("sample")
    if sample:
        out.print(f"  sample question = {sample['prompt']}", markup=False)
        out.print(f"  sample answer   = {sample['answer']}", markup=False)


@deployments.command("keys")
@manifest_options
@click.argument("name")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def show_keys(stack_args: dict[str, Any], name: str, output_format: str) -> None:
    """The deployment's two API keys (the only command that prints them)."""
    record, directory = one_deployment(stack_args, name)
    keys = deployment_keys(stack_args, record, directory)
    if output_format == "json":
        click.echo(json.dumps({"endpoint": record.outputs.get("endpoint"), **keys}, indent=2))
        return
    click.echo(f"endpoint: {record.outputs.get('endpoint')}")
    for key_name, value in keys.items():
        click.echo(f"{key_name}: {value}")


@deployments.command("regenerate-key")
@manifest_options
@click.argument("name")
@click.option("--key", "which", type=click.Choice(["key1", "key2"]), required=True,
              help="Which key to replace; the other keeps working (rotate one at a time).")
@handle_errors
def regenerate_key(stack_args: dict[str, Any], name: str, which: str) -> None:
    """Replace one key; the running endpoint accepts the new one at once and refuses the old."""
    from foundryctl.backends.local.server_process import reload_server, server_state
    from foundryctl.serving.deploydir import key_fingerprint

    record, directory = one_deployment(stack_args, name)
    if directory is None:
        _backend_handler(stack_args, record, lambda handler, target: handler.regenerate_key(target, which))
        console().print(f"{which} of {record.address} regenerated by Azure; the other key keeps working. "
                        + runnable(f"See it with: foundryctl deployments keys {record.name}"), markup=False)
        return
    new = directory.regenerate(which)
    state = server_state(directory)
    if state == "Stopped":
        note = "the server is stopped; it takes the new key when apply restarts it"
    else:
        reload_server(directory, None)  # raises when the server keeps refusing: the old key may still work
        note = "the running server accepts it now and refuses the old one"
    console().print(f"{which} of {record.address} regenerated ({key_fingerprint(new)}); {note}. "
                    + runnable(f"See it with: foundryctl deployments keys {record.name}"), markup=False)


@deployments.command("logs")
@manifest_options
@click.argument("name")
@click.option("--follow", "-F", is_flag=True, help="Keep printing new lines until interrupted.")
@handle_errors
def deployment_logs(stack_args: dict[str, Any], name: str, follow: bool) -> None:
    """The server's log (requests, model loads, errors)."""
    record, directory = one_deployment(stack_args, name)
    print_log(local_directory(record, directory, "its logs are in Azure AI Foundry").log, follow=follow)


def _model_name(model_id: str | None) -> str:
    if not model_id:
        return ""
    parts = model_id.rstrip("/").split("/")
    return f"{parts[-3]}:{parts[-1]}" if len(parts) >= 4 and parts[-2] == "versions" else model_id


def _filter_summary(settings: dict[str, Any]) -> str:
    if not settings.get("enabled", True):
        return "off"
    text = f"on (>= {settings.get('threshold', 'medium')}"
    overrides = settings.get("categories") or {}
    if overrides:
        text += "; " + ", ".join(f"{k} {v}" for k, v in sorted(overrides.items()))
    for source, levels in sorted((settings.get("sources") or {}).items()):
        if levels:
            text += f"; {source}: " + ", ".join(f"{k} {v}" for k, v in sorted(levels.items()))
    return text + ")"
