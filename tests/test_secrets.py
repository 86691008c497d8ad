"""Secrets never reach logs, files or child processes.

The parts first (the child environment, redaction, file modes), then `sensitive: true`
variables through the real CLI on the quickstart, then the proof: a project that trains and
serves with known secrets everywhere a user might put them, every file it leaves grepped
(SQLite too) and the environment of every process it starts read while they run.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import Project
from hypothesis import given, settings
from hypothesis import strategies as st
from test_finetune_job import finetune_project, smollm2  # noqa: F401 (a fixture)

from foundryctl.backends.local.child_env import allowed, child_environment, child_process_options
from foundryctl.private_files import open_private_append, private_directory, write_private
from foundryctl.sensitive import (
    SHOWN,
    Secrets,
    is_marker,
    matches_marker,
    redact_argv,
    reveal,
    stored_marker,
)

# -- the environment of trainers and servers --------------------------------------------------

CREDENTIALS = {
    "AZURE_CLIENT_SECRET": "client-secret-0f3a9", "AZURE_STORAGE_CONNECTION_STRING": "AccountKey=abc123==",
    "FOUNDRYCTL_STATE_CONNECTION_STRING": "AccountKey=state==", "HF_TOKEN": "hf_abcdef",
    "HUGGING_FACE_HUB_TOKEN": "hf_other", "CONTENT_SAFETY_KEY": "cs-key", "GITHUB_TOKEN": "ghp_x",
    "AWS_SECRET_ACCESS_KEY": "aws", "OPENAI_API_KEY": "sk-x", "MY_PASSWORD": "pw", "ARM_CLIENT_SECRET": "arm",
    "NCCL_AUTH_KEY": "n", "TORCH_API_TOKEN": "t",
}
NEEDED = {
    "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp",
    "PYTHONPATH": "/src", "CUDA_VISIBLE_DEVICES": "0,1", "NCCL_DEBUG": "INFO", "NCCL_SOCKET_IFNAME": "lo",
    "TORCH_DISTRIBUTED_DEBUG": "DETAIL", "TORCHELASTIC_ERROR_FILE": "/tmp/e", "OMP_NUM_THREADS": "2",
    "HF_HOME": "/hf", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "FOUNDRYCTL_CACHE_DIR": "/c",
    "XDG_CACHE_HOME": "/x", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "LD_LIBRARY_PATH": "/cuda",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "VIRTUAL_ENV": "/venv",
    "HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "127.0.0.1", "REQUESTS_CA_BUNDLE": "/ca.pem",
}


def test_children_get_what_the_runners_read_and_no_credentials() -> None:
    environment = child_environment({**CREDENTIALS, **NEEDED, "SSH_AUTH_SOCK": "/s", "DISPLAY": ":0",
                                     "FOUNDRYCTL_PRINCIPAL": "someone", "FOUNDRYCTL_AZURE_LIVE": "1"})
    assert environment == NEEDED
    assert child_process_options()["umask"] == 0o077


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True),
       st.sampled_from(["SECRET", "TOKEN", "PASSWORD", "CONNECTION_STRING", "KEY", "CREDENTIAL"]),
       st.sampled_from(["", "HF_", "FOUNDRYCTL_", "TORCH_", "NCCL_", "CUDA_", "LC_"]))
def test_no_name_that_says_it_holds_a_secret_is_passed(stem: str, word: str, prefix: str) -> None:
    assert not allowed(f"{prefix}{stem}_{word}") and not allowed(f"{prefix}{word}_{stem}")


# -- redaction --------------------------------------------------------------------------------


def test_every_var_value_on_a_recorded_command_line_is_redacted() -> None:
    argv = ["foundryctl", "apply", "--var", "token=s3cr3t", "--var=pin=1234", "--var", "broken",
            "-f", "m.yaml", "--var-file", "prod.yaml"]
    assert redact_argv(argv) == ["foundryctl", "apply", "--var", "token=(redacted)", "--var=pin=(redacted)",
                                 "--var", "broken", "-f", "m.yaml", "--var-file", "prod.yaml"]


def test_strings_built_from_a_secret_and_equal_numbers_are_hidden() -> None:
    secrets = Secrets.of(["hunter22", 4242, "Bearer pin-4242"], ["token", "pin"])
    value = {"a": "x hunter22 y", "b": [4242, 4243, "Bearer pin-4242"], "c": True, "d": "plain"}
    found: set[tuple] = set()
    assert secrets.redact(value, found=found) == {"a": SHOWN, "b": [SHOWN, 4243, SHOWN], "c": True, "d": "plain"}
    assert found == {("a",), ("b", 0), ("b", 2)}
    assert secrets.redact_text("refused 'hunter22' here") == f"refused '{SHOWN}' here"


def test_interpolating_a_sensitive_variable_makes_the_result_sensitive(tmp_path: Path) -> None:
    from foundryctl.manifest import load_manifest

    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nvariables:\n  pin: {type: integer, sensitive: true}\n  plain: 4242\n"
                        "resources:\n  - kind: Hub\n    name: hub\n    location: eastus2\n"
                        "    description: \"pin-${var.pin}\"\n    tags: {same: \"n${var.plain}\"}\n")
    loaded = load_manifest(manifest, variables={"pin": "4242"}, env={})
    assert loaded.sensitive.names == ("pin",)
    attributes = loaded.sensitive.redact(loaded.resources["Hub.hub"].attributes)
    assert attributes["description"] == SHOWN
    assert attributes["tags"] == {"same": "n4242"}  # the same digits, not made from the secret


def test_a_stored_marker_tells_equal_values_without_holding_them() -> None:
    marker = stored_marker("hunter22")
    assert is_marker(marker) and "hunter22" not in marker
    assert matches_marker(marker, "hunter22") and not matches_marker(marker, "hunter23")
    assert reveal({"d": marker, "e": 1}, {"d": "hunter22", "e": 2}) == {"d": "hunter22", "e": 1}
    assert reveal({"d": marker}, {"d": "rotated"}) == {"d": marker}


def leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.text(min_size=1, max_size=24), st.text(max_size=12), st.text(max_size=12),
       st.integers(-10**6, 10**6))
def test_no_leaf_left_by_redaction_holds_the_secret(secret: str, before: str, after: str, number: int) -> None:
    secrets = Secrets.of([secret, number])
    value = {"k": [before + secret + after, {"n": secret, "i": number}], "m": after}
    for stored in (False, True):
        for leaf in leaves(secrets.redact(value, stored=stored)):
            assert is_marker(leaf) or (secret not in str(leaf) and leaf != number), leaf


# -- file modes -------------------------------------------------------------------------------


@pytest.fixture
def open_umask():
    """Files made under the most permissive umask, as some containers run."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_directories_and_files_whatever_the_umask(tmp_path: Path, open_umask) -> None:
    nested = private_directory(tmp_path / "a" / "b" / "c")
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", nested)] == [0o700] * 3
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    private_directory(old)
    assert mode(old) == 0o700
    write_private(nested / "config.json", "{}")
    assert mode(nested / "config.json") == 0o600
    log = nested / "server.log"
    log.write_text("from an older version\n")
    log.chmod(0o644)
    with open_private_append(log) as handle:
        handle.write(b"more\n")
    assert mode(log) == 0o600 and log.read_text() == "from an older version\nmore\n"


def test_endpoint_job_and_control_plane_directories_are_private(tmp_path: Path, open_umask) -> None:
    from foundryctl.backends.local import LocalCloud
    from foundryctl.serving.deploydir import DeploymentDir, ServerConfig
    from foundryctl.training.config import TrainingConfig
    from foundryctl.training.jobdir import JobDir

    endpoint = DeploymentDir(tmp_path / "endpoints" / "ws" / "bot")
    endpoint.ensure_secrets()
    endpoint.write_config(ServerConfig("bot", "/m", None, "id", 8000))
    endpoint.write_status(state="Ready")
    with endpoint.open_log():
        pass
    assert mode(endpoint.path) == 0o700
    assert {p.name: mode(p) for p in endpoint.path.iterdir()} == {
        "keys.json": 0o600, "admin.token": 0o600, "config.json": 0o600, "status.json": 0o600,
        "server.log": 0o600}

    job = JobDir(tmp_path / "jobs" / "ws" / "job")
    job.create()
    TrainingConfig(model_dir="/m", base_model="b", training_file="t", validation_file=None,
                   output_model="o").save(job.config)
    job.write_status(state="Queued")
    with job.open_log():
        pass
    assert mode(job.path) == 0o700
    assert {p.name: mode(p) for p in job.path.iterdir()} == {
        "config.json": 0o600, "status.json": 0o600, "train.log": 0o600}

    older = tmp_path / "cloud"
    (older / "jobs").mkdir(parents=True, mode=0o755)
    older.chmod(0o755)
    LocalCloud(older).close()
    assert mode(older) == 0o700 and mode(older / "jobs") == 0o700
    assert mode(older / "controlplane.db") == 0o600


# -- sensitive variables through the CLI ------------------------------------------------------

TOKEN = "tok-9f8e7d6c5b"  # passed with --var
FROM_ENV = "env-1a2b3c4d5e"  # a sensitive variable's default reads the environment


def sensitive_quickstart(project: Project) -> None:
    project.quickstart(description="hub for ${var.token}")
    project.edit("variables:\n", "variables:\n  token: {type: string, sensitive: true}\n"
                                 "  from_env: {default: \"${env.FT_FROM_ENV}\", sensitive: true}\n")
    project.edit("    description: Xbox customer-support agent\n", "    description: \"${var.from_env}\"\n")


def files_containing(root: Path, secret: str) -> list[str]:
    """Every file under `root` (binary ones too) whose bytes contain `secret`."""
    needle = secret.encode()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


def cloud_database(name: str) -> bool:
    """The local backend's control plane: the emulated Azure, which stores what it is sent."""
    return re.fullmatch(r"\.foundryctl/local/controlplane\.db(-wal|-shm)?", name) is not None


def test_sensitive_values_are_never_shown_saved_or_recorded(project: Project) -> None:
    sensitive_quickstart(project)
    env = {"FT_FROM_ENV": FROM_ENV}
    var = ("--var", f"token={TOKEN}")
    outputs = [project.cli("plan", *var, env=env),
               project.cli("plan", *var, "--json", env=env),
               project.cli("plan", *var, "--format", "markdown", env=env),
               project.cli("plan", *var, "--out", "plan.bin", env=env)]
    for result in outputs:
        assert result.code == 0, result
        assert TOKEN not in result.output and FROM_ENV not in result.output
    assert '+ description = "(sensitive value)"' in outputs[0].stdout
    assert '"description": "(sensitive value)"' in outputs[1].stdout
    saved = json.loads((project.root / "plan.bin").read_text())
    assert saved["manifest_source"]["sensitive_variables"] == ["token"]
    assert "token" not in saved["manifest_source"]["variables"]

    missing = project.cli_plain("apply", "plan.bin", env=env)
    assert missing.code == 1 and "does not keep the values of sensitive variables (token)" in missing.output
    wrong = project.cli_plain("apply", "plan.bin", "--var", "token=not-it", env=env)
    assert wrong.code == 1 and "pass the sensitive variables (token)" in wrong.output
    applied = project.cli_plain("apply", "plan.bin", *var, env=env)
    assert applied.code == 0, applied
    assert TOKEN not in applied.output

    again = project.cli("plan", *var, "--detailed-exitcode", env=env)
    assert again.code == 0, again  # the stored hashes match: no change, no drift
    assert project.cli("plan", *var, "--no-refresh", "--detailed-exitcode", env=env).code == 0
    rotated = project.cli("plan", *var, "--detailed-exitcode", env={"FT_FROM_ENV": "rotated-value"})
    assert rotated.code == 2 and '~ description = "(sensitive value)" -> "(sensitive value)"' in rotated.stdout
    assert FROM_ENV not in rotated.output and "rotated-value" not in rotated.output

    shown = project.cli("state", "show", "Hub.ft-hub", *var, env=env)
    assert shown.code == 0 and "(sensitive value #" in shown.stdout and TOKEN not in shown.stdout
    history = project.cli("state", "history", *var, env=env)
    assert "--var token=(redacted)" in history.stdout and TOKEN not in history.stdout

    for secret in (TOKEN, FROM_ENV):
        assert [f for f in files_containing(project.root, secret) if not cloud_database(f)] == []


def test_an_imported_resource_keeps_its_sensitive_values_hashed(project: Project) -> None:
    sensitive_quickstart(project)
    env = {"FT_FROM_ENV": FROM_ENV}
    var = ("--var", f"token={TOKEN}")
    assert project.cli("apply", "--auto-approve", *var, env=env).code == 0
    hub = project.state().get("Hub.ft-hub")
    assert project.cli("state", "rm", "Hub.ft-hub", *var, env=env).code == 0
    imported = project.cli("import", "Hub.ft-hub", hub.backend_id, *var, env=env)
    assert imported.code == 0, imported
    assert matches_marker(hub.attributes["description"], f"hub for {TOKEN}")
    assert project.state().get("Hub.ft-hub").attributes["description"] == hub.attributes["description"]
    assert [f for f in files_containing(project.root, TOKEN) if not cloud_database(f)] == []
    assert project.cli("plan", *var, "--detailed-exitcode", env=env).code == 0


def test_hints_repeat_a_sensitive_var_flag_without_its_value(project: Project) -> None:
    sensitive_quickstart(project)
    env = {"FT_FROM_ENV": FROM_ENV}
    planned = project.cli("plan", "--var", f"token={TOKEN}", "--out", "p.plan", env=env)
    assert planned.code == 0 and TOKEN not in planned.output, planned
    assert re.search(r"foundryctl apply p\.plan .*--var 'token=\(sensitive value\)'\n", planned.output)


def test_a_refused_sensitive_value_is_not_quoted(project: Project) -> None:
    project.quickstart()
    project.edit("variables:\n", "variables:\n  pin: {type: integer, sensitive: true}\n")
    result = project.cli("validate", "--var", "pin=12x34")
    assert result.code == 1 and "--var pin: not a valid integer" in result.output
    assert "12x34" not in result.output


# -- the proof: train and serve with secrets all around ----------------------------------------

SECRETS = {
    "AZURE_CLIENT_SECRET": "azsecret-7Q9w2E4r6T8y",
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=stK3y0123456789==",
}
VAR_SECRET = "varsecret-Zx81Yw72"  # a sensitive variable passed with --var
ENV_SECRET = "envsecret-Qa19Ws28"  # a sensitive variable read from the environment
PROOF_DEPLOYMENT = """
  - kind: Deployment
    name: xbox-bot
    project: xbox-support
    model: {job: xbox-agent}
    description: "support bot ${var.support_token}"
    serving:
      max_batch_size: 2
"""


class ChildWatcher:
    """Reads /proc/PID/environ of every trainer and server of one project while they run."""

    MARKERS = (b"foundryctl.training.run", b"foundryctl.serving.run", b"torch.distributed.run")

    def __init__(self, root: Path, secrets: list[str]):
        self.root = str(root).encode()
        self.secrets = [s.encode() for s in secrets]
        self.seen: dict[int, bytes] = {}  # pid -> command line
        self.leaks: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def scan(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
                if self.root not in command or not any(m in command for m in self.MARKERS):
                    continue
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile
                continue
            self.seen[int(entry.name)] = command
            self.leaks += [f"pid {entry.name}: {s.decode()}" for s in self.secrets if s in environ]

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.scan()

    def kinds(self) -> set[str]:
        return {m.decode().rsplit(".", 1)[-1] for c in self.seen.values() for m in self.MARKERS if m in c}


@pytest.fixture(scope="module")
def proof(tmp_path_factory: pytest.TempPathFactory, smollm2) -> dict:  # noqa: F811
    project = Project(tmp_path_factory.mktemp("secrets"))
    finetune_project(project, epochs=1)
    project.edit("variables:\n", "variables:\n  support_token: {type: string, sensitive: true}\n"
                                 "  env_token: {default: \"${env.FT_ENV_TOKEN}\", sensitive: true}\n")
    project.edit("    description: Xbox support conversations\n", "    description: \"data ${var.env_token}\"\n")
    with open(project.manifest, "a") as manifest:
        manifest.write(PROOF_DEPLOYMENT)
    env = {**SECRETS, "FT_ENV_TOKEN": ENV_SECRET}
    var = ("--var", f"support_token={VAR_SECRET}")
    everything = [*SECRETS.values(), VAR_SECRET, ENV_SECRET]
    out: dict = {"project": project, "outputs": [], "var": var, "env": env}
    try:
        with ChildWatcher(project.root, everything) as watcher:
            for args in (("plan",), ("plan", "--json"), ("plan", "--format", "markdown"),
                         ("plan", "--out", "plan.bin")):
                result = project.cli(*args, *var, env=env)
                assert result.code == 0, result
                out["outputs"].append(result)
            applied = project.cli_plain("apply", "plan.bin", *var, env=env, timeout=900)
            assert applied.code == 0, applied
            out["outputs"].append(applied)
            keys_result = project.cli("deployments", "keys", "xbox-bot", "--format", "json", *var, env=env)
            assert keys_result.code == 0, keys_result
            out["keys"] = json.loads(keys_result.stdout)
            chat = project.cli("chat", "xbox-bot", "My controller blinks red.", "--max-tokens", "8", *var, env=env)
            assert chat.code == 0, chat
            out["outputs"].append(chat)
            record = project.state().get("Deployment.xbox-bot")
            url = record.outputs["endpoint"]
            out["query_status"] = _get(f"{url}/models?api-key={out['keys']['key1']}")
            out["header_status"] = _get(f"{url}/models", {"api-key": out["keys"]["key2"]})
            for args in (("state", "history"), ("state", "show", "Deployment.xbox-bot"), ("plan",)):
                result = project.cli(*args, *var, env=env)
                assert result.code == 0, result
                out["outputs"].append(result)
            time.sleep(0.5)  # one more look at the server while it runs
            watcher.scan()
        out["watcher"] = watcher
        yield out
    finally:
        project.cli("destroy", "--auto-approve", *var, env=env, timeout=300)


def _get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_child_process_inherits_a_secret(proof: dict) -> None:
    watcher = proof["watcher"]
    assert {"run"} <= watcher.kinds() and len(watcher.seen) >= 2, watcher.seen  # a trainer and a server
    assert any(b"training" in c for c in watcher.seen.values()) and any(b"serving" in c for c in watcher.seen.values())
    assert watcher.leaks == []


def test_no_output_shows_a_secret(proof: dict) -> None:
    for result in proof["outputs"]:
        for secret in (*SECRETS.values(), VAR_SECRET, ENV_SECRET, proof["keys"]["key1"], proof["keys"]["key2"]):
            assert secret not in result.output, (secret, result)
    assert proof["header_status"] == 200


def test_no_file_holds_a_secret(proof: dict) -> None:
    root = proof["project"].root
    for secret in SECRETS.values():
        assert files_containing(root, secret) == []
    # The sensitive variables go where the manifest sends them, the (emulated) Azure resource's
    # description, and nowhere else: not state, not the saved plan, not history, not logs.
    for secret in (VAR_SECRET, ENV_SECRET):
        assert [f for f in files_containing(root, secret) if not cloud_database(f)] == []
    # Deployment keys live in the endpoint's 0600 key file (Azure's listKeys), nowhere else.
    # The key sent in a query string is not among them here: see the test after this one.
    key_file = re.compile(r"\.foundryctl/local/endpoints/[^/]+/xbox-bot/keys\.json")
    for name in ("key2",):
        found = files_containing(root, proof["keys"][name])
        assert found and all(key_file.fullmatch(f) for f in found), found


def test_a_key_sent_in_a_query_string_is_not_logged(proof: dict) -> None:
    root = proof["project"].root
    found = files_containing(root, proof["keys"]["key1"])
    key_file = re.compile(r"\.foundryctl/local/endpoints/[^/]+/xbox-bot/keys\.json")
    assert all(key_file.fullmatch(f) for f in found), found
