"""The `foundryctl` command. Each command lives in its own module, imported when it runs."""

from __future__ import annotations

import importlib
import sys

import click

from foundryctl import __version__
from foundryctl.cli.common import Settings, report_error

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS = {
    "validate": ("validate", "validate", "Check the manifest offline: schema, references, cycles, catalog."),
    "plan": ("plan", "plan", "Refresh actual state and show what apply would change."),
    "apply": ("apply", "apply", "Make the backend match the manifest (or apply a saved plan)."),
    "destroy": ("apply", "destroy", "Destroy everything in state, dependents first."),
    "state": ("state", "state", "Inspect and edit foundryctl's state."),
    "import": ("state", "import_command", "Adopt an existing object into state."),
    "graph": ("graph", "graph", "Print the dependency graph (DOT or Mermaid)."),
    "schema": ("schema", "schema", "Print the manifest's JSON Schema (or --markdown reference)."),
    "data": ("data", "data", "Validate chat-completion datasets (data validate FILE)."),
    "jobs": ("jobs", "jobs", "Fine-tune jobs: list, show, logs, metrics."),
    "evals": ("evals", "evals", "Evaluations: list, show (metrics, baselines, gate, examples)."),
    "deployments": ("deployments", "deployments", "Deployments: list, show, keys, regenerate-key, logs."),
    "chat": ("chat", "chat", "Ask a deployment a question (or chat interactively)."),
    "force-unlock": ("state", "force_unlock", "Release a state lock whose holder cannot."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(f"foundryctl.cli.{entry[0]}")
        return getattr(module, entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="foundryctl")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.option("--color/--no-color", default=None, help="Force colour on or off (default: auto, NO_COLOR).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, color: bool | None) -> None:
    """Declarative plan/apply for Azure AI Foundry fine-tuning.

    Describe providers, hubs, projects, role assignments and datasets in YAML, then
    validate, plan and apply them; the embedded local backend needs no account.
    """
    ctx.obj = Settings(debug=debug, color=color)


# Terraform's single-dash spellings of the flags foundryctl shares with it (`plan -out=p`,
# `apply -auto-approve`); click would read `-out` as `-o -u -t`. Only these names are
# rewritten, so every short option (-f, -F, -h) keeps its meaning.
TERRAFORM_FLAGS = frozenset({
    "out", "auto-approve", "var", "var-file", "target", "detailed-exitcode", "destroy", "refresh-only",
    "refresh", "json", "state", "parallelism", "lock-timeout", "no-color",
})


def terraform_style(argv: list[str]) -> list[str]:
    """argv with `-NAME[=VALUE]` turned into `--NAME[=VALUE]` for the names Terraform shares
    with foundryctl (`-refresh=false` into `--no-refresh`); nothing after a `--`."""
    out: list[str] = []
    for position, word in enumerate(argv):
        if word == "--":
            return out + argv[position:]
        name, sep, value = word[1:].partition("=")
        if word.startswith("-") and not word.startswith("--") and name in TERRAFORM_FLAGS:
            if name == "refresh" and sep:
                word = "--refresh" if value.lower() in ("true", "1") else "--no-refresh"
            else:
                word = "-" + word
        out.append(word)
    return out


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors and interrupts exit 1 and 130, never with a traceback."""
    argv = terraform_style(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=argv, prog_name="foundryctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so briefly, tracebacks are for --debug
        if "--debug" in argv:
            raise
        report_error(exc)
        click.echo("This is a bug in foundryctl; run again with --debug for the traceback.", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
