"""What every command shares: manifest options, the console, and error reporting.

Imports stay light here (click only); rich and the engine are imported inside functions so
that `foundryctl --help` starts fast.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from foundryctl.errors import Diagnostic
    from foundryctl.stack import Stack

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Settings:
    debug: bool = False
    color: bool | None = None  # None: decide from the terminal and NO_COLOR
    # The manifest flags of this run (` -f PATH --var-file F ...`), as typed from the cwd;
    # every `foundryctl ...` hint printed gets them, so that it runs as printed.
    manifest_flags: str = ""


def settings() -> Settings:
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(Settings) if ctx else None
    return found or Settings()


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    color = settings().color
    # emoji=False: user text such as root:x:0:0 must not print as root❌0:0
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False,
                   no_color=None if color is None else not color,
                   force_terminal=color if color else None)


def parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--var")
        out[name.strip()] = value
    return out


def manifest_options(func: F) -> F:
    """-f, --var, --var-file and --state, turned into a `stack_args` keyword argument."""

    @click.option("-f", "--file", "manifest", default=".", show_default=True,
                  type=click.Path(path_type=Path),
                  help="Manifest file, or a directory whose *.yaml files are read together.")
    @click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
                  help="Set a variable (repeatable); overrides --var-file and defaults.")
    @click.option("--var-file", "var_files", multiple=True, type=click.Path(path_type=Path),
                  help="YAML file of variable values (repeatable, later files win).")
    @click.option("--state", "state_path", type=click.Path(path_type=Path), default=None,
                  help="State file (default: the manifest's state.path, .foundryctl/state.db).")
    @functools.wraps(func)
    def wrapper(*args: Any, manifest: Path, variables: tuple[str, ...], var_files: tuple[Path, ...],
                state_path: Path | None, **kwargs: Any) -> Any:
        kwargs["stack_args"] = {"path": manifest, "variables": parse_vars(variables),
                                "var_files": list(var_files), "state_path": state_path}
        settings().manifest_flags = manifest_flags(manifest, var_files=var_files, state_path=state_path,
                                                   variables=variables)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def manifest_flags(manifest: str | Path | None, *, var_files: Any = (), state_path: str | Path | None = None,
                   variables: Any = ()) -> str:
    """` -f PATH --var-file F --state S --var N=V` as the user types them from the cwd
    (nothing for the defaults: `-f .` and the manifest's own state path)."""
    import shlex

    def here(path: str | Path) -> str:
        return shlex.quote(os.path.relpath(path))

    flags = f" -f {here(manifest)}" if manifest and os.path.relpath(manifest) != "." else ""
    flags += "".join(f" --var-file {here(f)}" for f in var_files or ())
    flags += f" --state {here(state_path)}" if state_path else ""
    return flags + "".join(f" --var {shlex.quote(v)}" for v in variables or ())


def stack_flags(stack: Stack) -> str:
    """manifest_flags() of a loaded stack (a saved plan's stack knows where its manifest is)."""
    from foundryctl.sensitive import SHOWN

    source, hidden = stack.source, set(stack.manifest.sensitive.names)
    return manifest_flags(source.get("path"), var_files=source.get("var_files"),
                          state_path=source.get("state_path"),
                          variables=[f"{k}={SHOWN if k in hidden else v}"
                                     for k, v in (source.get("variables") or {}).items()])


# A command that reads a manifest (so takes -f), up to where it ends in a hint: a closing
# backtick or parenthesis, a semicolon, a final full stop, or the end of the line.
_MANIFEST_COMMAND = re.compile(
    r"\bfoundryctl (?:(?:jobs|deployments|state) [a-z][a-z-]*|validate|plan|apply|destroy|import|graph|chat"
    r"|force-unlock)(?![\w-])[^`);\n]*?(?=\.?(?:[`);\n]|$))")


def runnable(text: str) -> str:
    """`text` (a hint, a line that names a command) with this run's manifest flags at the end
    of every `foundryctl COMMAND ...` it names, so that it runs as printed from the cwd."""
    flags = settings().manifest_flags
    if not flags or "foundryctl " not in text:
        return text
    return _MANIFEST_COMMAND.sub(
        lambda match: match.group(0) if " -f " in match.group(0) else match.group(0) + flags, text)


def lock_timeout_option(func: F) -> F:
    return click.option("--lock-timeout", type=float, default=0.0, show_default=True, metavar="SECONDS",
                        help="Wait this long for a state lock held by another run.")(func)


def load_stack(stack_args: dict[str, Any], *, check_files: bool = True) -> Stack:
    from foundryctl.errors import ManifestError
    from foundryctl.stack import Stack

    args = dict(stack_args)
    try:
        stack = Stack.load(args.pop("path"), check_files=check_files, **args)
    except ManifestError as exc:
        hide_in_hints(stack_args, exc.sensitive_names)
        raise
    hide_in_hints(stack_args, frozenset(stack.manifest.sensitive.names))
    return stack


def hide_in_hints(stack_args: dict[str, Any], sensitive_names: frozenset[str]) -> None:
    """Hints repeat this run's --var flags: those of sensitive variables lose their values."""
    from foundryctl.sensitive import SHOWN

    variables = stack_args.get("variables") or {}
    if not sensitive_names & set(variables):
        return
    settings().manifest_flags = manifest_flags(
        stack_args["path"], var_files=stack_args.get("var_files"), state_path=stack_args.get("state_path"),
        variables=[f"{name}={SHOWN if name in sensitive_names else value}" for name, value in variables.items()])


def records_in_state(stack_args: dict[str, Any], *kinds: str) -> dict[str, Any]:
    """name -> state record of every resource of `kinds` (read without checking data files);
    of two records with one name, that of the earlier kind."""
    with load_stack(stack_args, check_files=False) as stack:
        records = [r for r in stack.state.records() if r.kind in kinds]
    return {r.name: r for r in sorted(records, key=lambda r: -kinds.index(r.kind))}


def one_record(found: dict[str, Any], kind: str, name: str, what: str) -> Any:
    """The record `name` (or `Kind.name`) among `found`, or an error listing what there is."""
    from foundryctl.errors import FoundryctlError
    from foundryctl.suggest import did_you_mean

    key = name.split(".", 1)[1] if name.startswith(f"{kind}.") else name
    if key not in found or found[key] is None:
        raise FoundryctlError(f"no {what} {name!r} in state" + (did_you_mean(key, found) or (
            f" ({what}s: {', '.join(found)})" if found else " (none applied yet)")))
    return found[key]


def local_directory(record: Any, directory: Any, what: str) -> Any:
    """The record's local directory, or an error for a resource the backend keeps (an Azure
    job or endpoint, whose logs and metrics are in Azure AI Foundry)."""
    from foundryctl.errors import FoundryctlError

    if directory is None:
        studio = record.outputs.get("studio_url")
        raise FoundryctlError(f"{record.address} is on Azure ({record.backend_id}): {what}",
                              hint=f"open {studio}" if studio else "see it in the Azure AI Foundry portal")
    return directory


def print_log(path: Path, *, follow: bool, finished: Callable[[], bool] = lambda: False) -> None:
    """Print a log file; with `follow`, keep printing new lines until `finished()` says so
    and nothing new came (or until interrupted)."""
    import time

    position = 0
    while True:
        try:
            with open(path, "rb") as log:
                log.seek(position)
                chunk = log.read()
                position += len(chunk)
        except FileNotFoundError:
            chunk = b""
        if chunk:
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        if not follow or (finished() and not chunk):
            return
        time.sleep(0.5)


def print_notices(stack: Stack) -> None:
    if stack.notices:
        print_diagnostics(stack.notices)
        stack.notices.clear()


def source_line(diagnostic: Diagnostic) -> str | None:
    position = diagnostic.position
    if position is None:
        return None
    lines = _file_lines(position.file)
    return lines[position.line - 1] if 0 < position.line <= len(lines) else None


SOURCE_LINE_WIDTH = 160
_QUOTED_FILE_LIMIT = 2 * 1024 * 1024


@functools.lru_cache(maxsize=32)
def _file_lines(path: str) -> list[str]:
    # Only manifest and variable files are quoted: a data file's lines can be huge or secret
    # (a dataset path pointing at .env would put it in the CI log).
    try:
        if not path.endswith((".yaml", ".yml")) or os.path.getsize(path) > _QUOTED_FILE_LIMIT:
            return []
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def print_diagnostics(diagnostics: list[Diagnostic], *, summary: bool = False) -> None:
    """Compiler-style lines (file:line:col: severity: address: message), the source line, a hint."""
    from rich.markup import escape

    err = console(stderr=True)
    for d in diagnostics:
        colour = "red" if d.is_error else "yellow"
        where = f"{d.position}: " if d.position else ""
        who = f"{d.address}: " if d.address else ""
        err.print(f"{escape(where)}[bold {colour}]{d.severity.value}[/]: {escape(who + d.message)}")
        line = source_line(d)
        if line is not None and d.position is not None and d.position.column <= SOURCE_LINE_WIDTH:
            line = line if len(line) <= SOURCE_LINE_WIDTH else line[:SOURCE_LINE_WIDTH] + "..."
            err.print(f"  {d.position.line:>4} | {escape(line)}", style="dim")
            err.print(" " * (9 + d.position.column - 1) + "^", style=colour)
        if d.hint:
            err.print(f"  hint: {escape(runnable(d.hint))}", style="cyan")
    if summary:
        errors = sum(1 for d in diagnostics if d.is_error)
        warnings = len(diagnostics) - errors
        err.print(f"{errors} error(s), {warnings} warning(s)", style="bold red" if errors else "bold")


def handle_errors(func: F) -> F:
    """Turn foundryctl's errors into a message and exit 1; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from foundryctl.errors import FoundryctlError

        try:
            return func(*args, **kwargs)
        except FoundryctlError as exc:
            if settings().debug:
                raise
            report_error(exc)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def report_error(exc: Exception) -> None:
    from rich.markup import escape

    from foundryctl.errors import BackendError, ManifestError, PlanError

    if isinstance(exc, ManifestError):
        print_diagnostics(exc.diagnostics, summary=True)
        return
    err = console(stderr=True)
    if isinstance(exc, PlanError) and exc.diagnostics:
        print_diagnostics(exc.diagnostics)
    text = str(exc) if isinstance(exc, BackendError) else getattr(exc, "message", str(exc))
    prefix = f"{exc.address}: " if getattr(exc, "address", None) else ""
    err.print(f"[bold red]Error:[/] {escape(prefix + text)}")
    hint = getattr(exc, "hint", None)
    if hint:
        err.print(f"  hint: {escape(runnable(hint))}", style="cyan")
