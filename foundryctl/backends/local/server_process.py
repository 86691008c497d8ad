"""A deployment's server process on the local backend: start it detached on 127.0.0.1, wait
until it answers, hand it a new config, ask it a sample question, stop it. Hub Deployments and
FoundryDeployments both serve through it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from foundryctl.backends.base import Progress
from foundryctl.backends.local.child_env import child_process_options
from foundryctl.errors import BackendError
from foundryctl.kinds.deployment import RUNNING
from foundryctl.serving import loopback
from foundryctl.serving.deploydir import DeploymentDir, ServerConfig
from foundryctl.training.jobdir import pid_alive, process_start_time

START_TIMEOUT = 900.0  # loading a large model on a CPU is slow
STOP_TIMEOUT = 40.0
PROBE_TIMEOUT = 3.0
SAMPLE_TOKENS = 64


def start_server(directory: DeploymentDir, config: ServerConfig, progress: Progress) -> None:
    """Start a server on `config`; it becomes the config a restart uses only once it answers."""
    from foundryctl.backends.local.handlers.base import log_tail  # the handlers package imports this module

    if not port_free(config.port):
        raise BackendError("PortInUse", f"127.0.0.1:{config.port} is used by another process",
                           hint="free the port, or set another `serving.port` (or leave it out: a free "
                                "one is chosen)")
    directory.write_pending(config)
    directory.write_status(state="Starting", error=None, pid=None, port=config.port)
    with directory.open_log() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "foundryctl.serving.run", str(directory.path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=directory.path,
            **child_process_options(), start_new_session=True)  # outlives apply; Ctrl-C stays with apply
    directory.write_status(pid=process.pid, pid_start=process_start_time(process.pid))
    progress(f"server starting (pid {process.pid}, log {directory.log})")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            directory.discard_pending()
            status = directory.read_status()
            raise BackendError("DeploymentFailed", "the server exited: "
                               f"{status.get('error') or 'see its log'}\n{log_tail(directory.log, 6)}",
                               hint=f"see {directory.log}")
        if healthy(config.port):
            progress(f"serving on http://127.0.0.1:{config.port}/v1")
            return
        time.sleep(0.25)
    stop_server(directory, progress)
    directory.discard_pending()
    raise BackendError("DeploymentTimeout", f"the server did not answer within {START_TIMEOUT:.0f} s",
                       hint=f"see {directory.log}")



def reload_server(directory: DeploymentDir, config: ServerConfig | None) -> None:
    """Hand the running server a new config (None: re-read the keys) and wait until it has
    taken it; a model that fails to load leaves the old one serving."""
    port = (config or directory.read_config()).port  # type: ignore[union-attr]
    body = json.dumps(config.to_dict()).encode() if config is not None else b""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/reload", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Foundryctl-Admin": directory.admin_token()})
    try:
        with loopback.urlopen(request, timeout=START_TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise BackendError("ReloadFailed", f"the endpoint kept its previous settings: {error_message(exc)}",
                           hint=f"see {directory.log}") from None
    except OSError as exc:
        raise BackendError("ReloadFailed", f"the endpoint did not answer the reload: {exc}",
                           hint="apply again: a server that stopped answering is restarted") from None


def store_filter_key(directory: DeploymentDir, settings: dict[str, Any]) -> None:
    """The Azure AI Content Safety key, read from apply's environment (so a rotated key is
    picked up by the next apply) into a 0600 file the server reads; never into config or state."""
    if settings.get("classifier") != "azure":
        directory.write_filter_key(None)
        return
    variable = settings.get("azure_key_env") or "CONTENT_SAFETY_KEY"
    key = os.environ.get(variable)
    if not key:
        raise BackendError("ContentSafetyKeyMissing", f"content_filter.classifier is azure, but the environment "
                           f"variable {variable} that holds the Content Safety key is not set",
                           hint=f"export {variable}=... (the key of {settings.get('azure_endpoint')}) and apply again")
    directory.write_filter_key(key)


def server_state(directory: DeploymentDir) -> str:
    """Running (answering), Starting, Unhealthy (alive, not answering) or Stopped."""
    status = directory.read_status()
    pid = status.get("pid")
    if not pid or not pid_alive(pid, status.get("pid_start")):
        return "Stopped"
    port = status.get("port")
    for _ in range(3):  # a busy server may miss one probe; only one that keeps failing is unhealthy
        if port and healthy(port):
            return RUNNING
        if status.get("state") == "Starting":
            return "Starting"
    return "Unhealthy"


def stop_server(directory: DeploymentDir, progress: Progress) -> None:
    """SIGTERM (in-flight requests finish), SIGKILL after STOP_TIMEOUT; then wait for the port."""
    status = directory.read_status()
    pid, started = status.get("pid"), status.get("pid_start")
    if pid and pid_alive(pid, started):
        progress(f"stopping the server (pid {pid})")
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + wait
            while pid_alive(pid, started) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not pid_alive(pid, started):
                break
    port = status.get("port")
    deadline = time.monotonic() + 10
    while port and not port_free(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if directory.path.exists():
        directory.write_status(state="Stopped", pid=None)


def healthy(port: int) -> bool:
    try:
        with loopback.urlopen(f"http://127.0.0.1:{port}/health", timeout=PROBE_TIMEOUT) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kept_port(directory: DeploymentDir) -> int:
    """The port the deployment served on, while it is still its own or free (the port its
    clients know), else a new free one."""
    current = directory.read_config()
    if current is not None and (port_free(current.port) or server_state(directory) != "Stopped"):
        return current.port
    return free_port()


DEFAULT_QUESTION = "Hello! What can you help me with?"


def sample_question(*data_files: str | None) -> str:
    """The first user message (or labelled text) of the first of `data_files` that has one:
    an input of the kind the model was trained for, to ask as the sample."""
    for path in data_files:
        if not path:
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        example = json.loads(line)
                        messages = example.get("messages") or []
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(example.get("text"), str) and example["text"].strip():
                        return example["text"].strip()  # labelled text (text_classification)
                    question = next((m.get("content") for m in messages
                                     if isinstance(m, dict) and m.get("role") == "user"), None)
                    if isinstance(question, str) and question.strip():
                        return question.strip()
        except (OSError, UnicodeDecodeError, TypeError):
            continue
    return DEFAULT_QUESTION


def sample_answer(port: int, key: str, question: str) -> str:
    """The server's answer to one question, asked the way a client would (a failure is
    described, not raised: the server is up, the sample is only informative)."""
    # Sampled, with a fixed seed: greedy decoding sends small models into loops ("no, no, no"),
    # which would misrepresent them; the seed keeps the sample the same for the same model.
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": SAMPLE_TOKENS,
            "temperature": 0.7, "top_p": 0.9, "seed": 0}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "api-key": key})
    try:
        with loopback.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as exc:
        return f"(HTTP {exc.code}: {error_message(exc)})"
    except (OSError, ValueError, KeyError) as exc:
        return f"(no answer: {exc})"


def error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc)
