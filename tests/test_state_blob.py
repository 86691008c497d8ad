"""Remote state in Azure Blob Storage keeps the SQLite store's promises, for real, against Azurite.

Azurite (the Azure Storage emulator) is started once per session on 127.0.0.1 with a free
port; leases there expire in real time. The store runs the same operations as the SQLite one
with the same results; real `foundryctl` processes contend for the lease, get killed, and
force-unlock; a writer that lost its lease or holds a stale ETag never overwrites; and the
connection string never shows up in output, state or history.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project, require

from foundryctl.errors import ManifestError, StateError, StateLockedError
from foundryctl.manifest import load_manifest
from foundryctl.manifest.schema import (
    AzureBlobStateConfig,
    SqliteStateConfig,
    StateConfig,
)
from foundryctl.state import ResourceRecord, StateStore, Status, open_state

ENV_NAME = "FOUNDRYCTL_STATE_CONNECTION_STRING"
# Azurite's well-known development account (public, documented by Microsoft); the tests still
# treat it as the secret it stands for.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LEASE = 15  # Azure's shortest lease: expiry tests wait this long

SLOW_HUBS = """\
version: 1
backend: {type: local, api_latency: 0.4}
resources:
""" + "".join(f"  - {{kind: Hub, name: hub-{i}, location: eastus2}}\n" for i in range(5))


# -- Azurite ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Azurite:
    port: int

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.account_url};")

    @property
    def env(self) -> dict[str, str]:
        return {ENV_NAME: self.connection_string}

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


def azurite_command() -> list[str] | None:
    """The copy .ci/run installs, one on PATH, or npx (which fetches it from npm once)."""
    local = REPO / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists() and shutil.which("node"):
        return [str(local)]
    if shutil.which("azurite-blob"):
        return [shutil.which("azurite-blob")]  # type: ignore[list-item]
    if shutil.which("npx") and shutil.which("node"):
        return [shutil.which("npx"), "--yes", "--package=azurite@3", "azurite-blob"]  # type: ignore[list-item]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer (403 without credentials) means it is serving
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    try:
        import azure.storage.blob  # noqa: F401
    except ImportError:
        require("azure-storage-blob is not installed (pip install -e '.[blob]')")
    command = azurite_command()
    if command is None:
        require("Azurite needs node and npx (npm)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    log_path = workdir / "azurite.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*command, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workdir / "data"),
             "--silent", "--skipApiVersionCheck", "--disableTelemetry"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # the first npx run downloads it
        while not answers(f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Azurite did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Azurite(port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # npx runs node as a child: the whole group
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    with azurite.service() as service:
        service.create_container(name)
    return name


def blob_config(azurite: Azurite, container: str, **overrides: Any) -> AzureBlobStateConfig:
    fields = {"type": "azure_blob", "account_url": azurite.account_url, "container": container,
              "key": "teams/ml/foundryctl.state", "lease_seconds": LEASE, **overrides}
    return AzureBlobStateConfig(**fields)


@pytest.fixture
def open_store(azurite: Azurite, container: str) -> Iterator[Any]:
    """Open stores on the test's container (each as another foundryctl process would)."""
    stores: list[Any] = []

    def opener(**overrides: Any):
        store = open_state(blob_config(azurite, container, **overrides), ".", env=azurite.env)
        stores.append(store)
        return store

    yield opener
    for store in stores:
        store.close()


@pytest.fixture
def store(open_store):
    return open_store()


@pytest.fixture
def other(open_store, store):
    return open_store()


def blob_state_block(azurite: Azurite, container: str, lease_seconds: int = LEASE) -> str:
    return (f'state: {{type: azure_blob, account_url: "{azurite.account_url}", container: {container}, '
            f'key: teams/ml/foundryctl.state, lease_seconds: {lease_seconds}}}\n')


def record(address: str, **overrides: Any) -> ResourceRecord:
    kind, name = address.split(".", 1)
    fields: dict[str, Any] = {
        "address": address, "kind": kind, "name": name,
        "backend_id": f"/subscriptions/s/resourceGroups/rg/providers/X/{name}", "status": Status.READY,
        "attributes": {"location": "eastus2", "tags": {"team": "ml", "z": "é☃"},
                       "nested": [1, 2.5, None, True, {"k": [0.1, 1e-7]}]},
        "outputs": {"id": f"/x/{name}", "etag": '"e1"', "count": 3}, "dependencies": [], "protect": False,
    }
    fields.update(overrides)
    return ResourceRecord(**fields)


def content(r: ResourceRecord) -> tuple:
    return (r.address, r.kind, r.name, r.backend_id, r.status, r.attributes, r.outputs, r.dependencies,
            r.protect)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


# -- configuration (no Azurite needed) ---------------------------------------------------


def manifest_errors(project: Project, state_block: str) -> str:
    project.write("version: 1\n" + state_block)
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(project.manifest)
    return "\n".join(d.message for d in excinfo.value.diagnostics)


class TestConfig:
    def test_sqlite_stays_the_default(self, project: Project) -> None:
        project.write("version: 1\n")
        assert load_manifest(project.manifest).state == SqliteStateConfig()
        project.write("version: 1\nstate: {path: elsewhere/state.db}\n")
        assert load_manifest(project.manifest).state == SqliteStateConfig(path="elsewhere/state.db")
        assert StateConfig().root == SqliteStateConfig()  # the union's default

    def test_azure_blob_block(self, project: Project) -> None:
        project.write("version: 1\nstate:\n  type: azure_blob\n  account_url: https://acme.blob.core.windows.net/\n"
                      "  container: tfstate\n")
        state = load_manifest(project.manifest).state
        assert state == AzureBlobStateConfig(type="azure_blob", account_url="https://acme.blob.core.windows.net",
                                             container="tfstate")
        assert (state.key, state.lease_seconds, state.connection_string_env) == ("foundryctl.state", 60, ENV_NAME)
        union = StateConfig.model_validate({"type": "azure_blob", "account_url": "https://a.blob.core.windows.net",
                                            "container": "c01"})
        assert isinstance(union.root, AzureBlobStateConfig)

    @pytest.mark.parametrize(("block", "expected"), [
        ("state: {type: azure_blobs}", "unknown state type 'azure_blobs'; did you mean 'azure_blob'?"),
        ("state: {type: azure_blob, account_url: 'https://a.blob.core.windows.net', containr: c01}",
         "unknown key 'containr'; did you mean 'container'?"),
        (("state: {type: azure_blob, account_url: 'https://a.blob.core.windows.net', container: c01, "
          "lease_seconds: 10}"), "lease_seconds: Input should be greater than or equal to 15"),
        (("state: {type: azure_blob, account_url: 'https://a.blob.core.windows.net', container: c01, "
          "lease_seconds: 90}"), "lease_seconds: Input should be less than or equal to 60"),
        ("state: {type: azure_blob, account_url: 'http://storage.example.com', container: c01}",
         "plain http is only for a local emulator"),
        (("state: {type: azure_blob, account_url: 'https://a.blob.core.windows.net?sv=1&sig=abc', "
          "container: c01}"), "must not carry a query"),
        ("state: {type: azure_blob, account_url: 'https://a.blob.core.windows.net', container: Bad_Name}",
         "a container name is 3-63 lowercase letters"),
        ("state: {type: sqlite, container: c01}", "unknown key 'container'"),
    ])
    def test_invalid_blocks(self, project: Project, block: str, expected: str) -> None:
        assert expected in manifest_errors(project, block + "\n")

    def test_a_key_in_the_manifest_is_refused_without_echoing_it(self, project: Project) -> None:
        errors = manifest_errors(project, "state: {type: azure_blob, account_url: 'https://a.blob.core.windows.net', "
                                          f"container: c01, account_key: '{ACCOUNT_KEY}'}}\n")
        assert "never goes in the manifest" in errors and ENV_NAME in errors
        assert ACCOUNT_KEY not in errors

    def test_credentials_from_the_environment_or_default_credential(self) -> None:
        from azure.identity import DefaultAzureCredential

        from foundryctl.state.blob_store import service_client

        config = AzureBlobStateConfig(type="azure_blob", account_url="https://acme.blob.core.windows.net",
                                      container="c01", connection_string_env="TEAM_STATE")
        client, secrets = service_client(config, env={})  # nothing is sent until the first request
        assert isinstance(client.credential, DefaultAzureCredential) and secrets == []
        good = f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
        client, secrets = service_client(config, env={"TEAM_STATE": good})
        assert client.account_name == "acme" and ACCOUNT_KEY in secrets
        other = good.replace("AccountName=acme", "AccountName=other")
        with pytest.raises(StateError) as excinfo:
            service_client(config, env={"TEAM_STATE": other})
        assert "other.blob.core.windows.net" in excinfo.value.message and ACCOUNT_KEY not in str(excinfo.value)
        with pytest.raises(StateError, match=r"\$TEAM_STATE is not a storage connection string") as excinfo:
            service_client(config, env={"TEAM_STATE": f"nonsense{ACCOUNT_KEY}"})
        assert ACCOUNT_KEY not in excinfo.value.message

    def test_help_and_validate_do_not_import_the_azure_sdk(self, project: Project) -> None:
        project.write("version: 1\nstate: {type: azure_blob, account_url: 'https://a.blob.core.windows.net', "
                      "container: c01}\n")
        code = ("import runpy, sys\n"
                "sys.argv = ['foundryctl', '--help']\n"
                "try:\n    runpy.run_module('foundryctl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                "sys.argv = ['foundryctl', 'validate', '-f', " + repr(str(project.manifest)) + "]\n"
                "try:\n    runpy.run_module('foundryctl', run_name='__main__')\nexcept SystemExit as exit:\n"
                "    print('EXIT:', exit.code)\n"
                "print('AZURE:', sorted(m for m in sys.modules if m.startswith('azure')))\n")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "EXIT: 0" in result.stdout, result.stdout + result.stderr  # validate ran and passed
        assert "AZURE: []" in result.stdout


# -- the store: same results as SQLite ---------------------------------------------------


def script(store: Any) -> dict[str, Any]:
    """One sequence of operations; everything observable about its outcome."""

    def failing() -> Iterator[str]:
        yield "Hub.main"
        raise RuntimeError("interrupted")

    serials = [store.serial]
    serials.append(store.put(record("ProviderRegistration.net", attributes={"namespace": "Microsoft.Network"})))
    serials.append(store.write(puts=[record("Hub.main", protect=True),
                                     record("Project.zeta", dependencies=["Hub.main"], status=Status.CREATING,
                                            backend_id=None)]))
    serials.append(store.put(record("Hub.main", protect=False, outputs={"changed": True})))  # keeps its place
    serials.append(store.write(puts=[record("RoleAssignment.alpha", dependencies=["Project.zeta"])],
                               removes=["ProviderRegistration.net"]))
    store.append_history("apply-started", {"summary": {"add": 1, "change": 0, "destroy": 0}})
    lock, stale = store.acquire_lock("apply", command="foundryctl apply --auto-approve")
    serials.append(store.put(record("Project.zeta", dependencies=["Hub.main"], status=Status.READY)))
    store.append_history("apply-finished", {"outcome": "succeeded", "nested": {"x": [1, 2]}})
    store.release_lock(lock.id)
    serials.append(store.remove("Hub.main"))
    with pytest.raises(RuntimeError, match="interrupted"):
        store.write(puts=[record("Hub.new")], removes=failing())  # changes nothing
    serials.append(store.serial)
    snap = store.snapshot()
    return {
        "serials": serials, "stale": stale, "lock_after": store.current_lock(),
        "snapshot_serial": snap.serial,
        "records": [(content(r), r.updated_serial) for r in snap.records.values()],
        "get": [content(store.get(a)) for a in snap.records],  # type: ignore[arg-type]
        "missing": store.get("Hub.main"),
        "stamped": all(r.updated_at.endswith("Z") for r in snap.records.values()),
        "history": [(e.id, e.serial, e.event, e.details, e.user, e.host, e.pid, e.command) for e in store.history()],
        "history_tail": [e.event for e in store.history(limit=1)],
    }


class TestSameAsSqlite:
    def test_same_operations_same_results(self, tmp_path: Path, store) -> None:
        sqlite = StateStore(tmp_path / "state.db")
        try:
            expected = script(sqlite)
        finally:
            sqlite.close()
        got = script(store)
        assert got == expected
        assert got["serials"] == [0, 1, 2, 3, 4, 5, 6, 6]
        assert [r[0][0] for r in got["records"]] == ["Project.zeta", "RoleAssignment.alpha"]

    def test_lineage_is_fixed_and_shared(self, store, open_store, azurite: Azurite, container: str) -> None:
        lineage = store.lineage
        assert str(uuid.UUID(lineage)) == lineage
        store.put(record("Hub.a"))
        store.close()
        again = open_store()
        assert (again.lineage, again.serial) == (lineage, 1)
        assert again.put(record("Hub.b")) == 2
        elsewhere = open_store(key="another.state")
        assert elsewhere.lineage != lineage and elsewhere.serial == 0

    def test_blob_layout(self, store, azurite: Azurite, container: str) -> None:
        store.put(record("Hub.a"))
        store.append_history("apply-started", {"n": 1})
        store.append_history("apply-finished", {"n": 2})
        with azurite.service() as service:
            blobs = {b.name: b for b in service.get_container_client(container).list_blobs()}
            assert set(blobs) == {"teams/ml/foundryctl.state", "teams/ml/foundryctl.state.history"}
            assert blobs["teams/ml/foundryctl.state"].blob_type == "BlockBlob"
            assert blobs["teams/ml/foundryctl.state.history"].blob_type == "AppendBlob"
            doc = json.loads(service.get_blob_client(container, "teams/ml/foundryctl.state").download_blob().readall())
            assert doc["format"] == "foundryctl-state" and doc["version"] == 1
            assert (doc["lineage"], doc["serial"]) == (store.lineage, 1)
            assert [r["address"] for r in doc["resources"]] == ["Hub.a"]
            lines = service.get_blob_client(container, "teams/ml/foundryctl.state.history") \
                .download_blob().readall().decode().splitlines()
            assert [json.loads(line)["event"] for line in lines] == ["apply-started", "apply-finished"]

    def test_other_store_sees_writes_and_no_update_is_lost(self, store, other) -> None:
        assert store.put(record("Hub.a")) == 1
        got = other.get("Hub.a")
        assert got is not None and content(got) == content(record("Hub.a"))
        # Both write without the lock: each upload is conditional on the ETag it read, so the
        # one that raced re-reads and redoes its change on top of the other's.
        assert other.put(record("Hub.b")) == 2
        assert store.put(record("Hub.c")) == 3
        assert list(other.snapshot().records) == ["Hub.a", "Hub.b", "Hub.c"]

    def test_newer_or_foreign_documents_are_refused(self, azurite: Azurite, container: str, open_store) -> None:
        with azurite.service() as service:
            blob = service.get_blob_client(container, "teams/ml/foundryctl.state")
            blob.upload_blob(json.dumps({"format": "foundryctl-state", "version": 99, "lineage": "x",
                                         "serial": 0, "resources": []}))
            with pytest.raises(StateError, match="newer foundryctl"):
                open_store()
            blob.upload_blob(b"terraform state, not ours", overwrite=True)
            with pytest.raises(StateError, match="not a foundryctl state document"):
                open_store()

    def test_missing_container_is_explained(self, azurite: Azurite) -> None:
        with pytest.raises(StateError) as excinfo:
            open_state(blob_config(azurite, "no-such-container"), ".", env=azurite.env)
        assert "ContainerNotFound" in excinfo.value.message
        assert excinfo.value.hint and "create the container" in excinfo.value.hint


# -- the lock ------------------------------------------------------------------------------


class TestLock:
    def test_a_retried_upload_that_had_landed_counts_as_written(self, store) -> None:
        """The SDK retries an upload whose answer was lost; the retry's old ETag is refused.
        The store then finds its own bytes in the blob and carries on instead of aborting."""
        lock, _ = store.acquire_lock("apply")
        try:
            serial = store.write(puts=[record("Hub.a")])
            written = store._raw
            store._etag = '"0x8D0000000000000"'  # what the retry sent: the ETag before the write
            assert store._landed(written, serial) is True
            assert store._etag != '"0x8D0000000000000"'
            assert store._landed(b'{"something": "else"}', serial + 1) is False
            assert store.write(puts=[record("Hub.b")]) == serial + 1  # the lease is still usable
        finally:
            store.release_lock(lock.id)

    def test_second_acquire_is_refused_naming_the_holder(self, store, other) -> None:
        lock, stale = store.acquire_lock("apply", command="foundryctl apply --auto-approve")
        assert stale is None and str(uuid.UUID(lock.id)) == lock.id
        assert (lock.operation, lock.command, lock.pid) == ("apply", "foundryctl apply --auto-approve", os.getpid())
        started = time.monotonic()
        with pytest.raises(StateLockedError) as excinfo:
            other.acquire_lock("destroy", timeout=0)
        assert time.monotonic() - started < 3.0
        error = excinfo.value
        assert f"state is locked by apply by {lock.user}@{lock.host} (pid {os.getpid()})" in error.message
        assert lock.id in error.message
        assert error.hint is not None and f"foundryctl force-unlock {lock.id}" in error.hint
        assert error.holder == lock
        assert other.current_lock() == lock
        with pytest.raises(StateLockedError):
            other.put(record("Hub.sneaky"))  # a writer without the lease is refused by the service
        assert store.put(record("Hub.a")) == 1  # the holder writes
        store.release_lock(lock.id)
        assert other.current_lock() is None
        second, stale = other.acquire_lock("plan")
        assert stale is None and store.current_lock() == second

    def test_release_with_another_id_does_nothing(self, store, other) -> None:
        lock, _ = store.acquire_lock("apply")
        other.release_lock(lock.id)  # not its lease
        store.release_lock(str(uuid.uuid4()))
        assert other.current_lock() == lock

    def test_waits_until_released_or_gives_up(self, store, other) -> None:
        import threading

        lock, _ = store.acquire_lock("apply")
        started = time.monotonic()
        with pytest.raises(StateLockedError):
            other.acquire_lock("plan", timeout=0.5)
        assert 0.45 <= time.monotonic() - started < 3.0
        releaser = threading.Timer(0.5, store.release_lock, args=(lock.id,))
        started = time.monotonic()
        releaser.start()
        try:
            mine, stale = other.acquire_lock("plan", timeout=10)
        finally:
            releaser.join()
        assert stale is None and 0.45 <= time.monotonic() - started < 4.0
        assert store.current_lock() == mine

    def test_lease_is_renewed_while_held_and_expires_when_not(self, store, other, azurite: Azurite,
                                                              container: str) -> None:
        lock, _ = store.acquire_lock("apply")
        time.sleep(LEASE + 1.5)  # past the lease: only renewal keeps it
        with pytest.raises(StateLockedError):
            other.acquire_lock("plan", timeout=0)
        assert store.put(record("Hub.a")) == 1
        # The holder freezes (its renewer stops, as when it is killed or cut off): its lease
        # runs out, and the next run takes over and records the recovery.
        store._held.stop.set()
        started = time.monotonic()
        mine, stale = other.acquire_lock("apply", timeout=LEASE + 15)
        assert time.monotonic() - started < LEASE + 5
        assert stale == lock and mine.id != lock.id
        recovered = other.history()[-1]
        assert recovered.event == "lock-recovered" and recovered.details["stale_lock"]["id"] == lock.id
        assert other.put(record("Hub.b")) == 2
        # The old holder can never overwrite: it knows its lease lapsed, and the service
        # refuses its lease id anyway.
        with pytest.raises(StateError, match="lost the state lock"):
            store.put(record("Hub.lost"))
        store._held.lost = None
        store._held.renewed_at = time.monotonic()  # pretend it still believes in its lease
        with pytest.raises(StateError, match="lost the state lock.*nothing was written"):
            store.put(record("Hub.lost"))
        assert list(other.snapshot().records) == ["Hub.a", "Hub.b"]
        with azurite.service() as service:
            doc = json.loads(service.get_blob_client(container, "teams/ml/foundryctl.state").download_blob().readall())
        assert [r["address"] for r in doc["resources"]] == ["Hub.a", "Hub.b"]

    def test_stale_etag_is_refused(self, store, azurite: Azurite, container: str) -> None:
        from azure.core import MatchConditions

        store.put(record("Hub.a"))
        lock, _ = store.acquire_lock("apply")
        # A second writer holding the same lease (a bug, or a copy of the lease id) changes
        # the document behind the holder's back: the holder's next upload, conditional on the
        # ETag it last saw, is refused; the other content stays.
        with azurite.service() as service:
            blob = service.get_blob_client(container, "teams/ml/foundryctl.state")
            downloaded = blob.download_blob()
            doc = json.loads(downloaded.readall())
            doc["serial"] += 1
            doc["resources"] = []
            blob.upload_blob(json.dumps(doc), overwrite=True, lease=store._held.lease_id,
                             etag=downloaded.properties.etag, match_condition=MatchConditions.IfNotModified,
                             metadata=store._held.metadata)
            with pytest.raises(StateError, match="lost the state lock.*changed although this run held the lease"):
                store.put(record("Hub.b"))
            after = json.loads(blob.download_blob().readall())
        assert after["resources"] == [] and after["serial"] == 2
        store.release_lock(lock.id)

    def test_force_unlock(self, store, other) -> None:
        lock, _ = store.acquire_lock("apply")
        with pytest.raises(StateError, match="does not match the current lock"):
            other.force_unlock(str(uuid.uuid4()))
        assert other.current_lock() == lock
        removed = other.force_unlock(lock.id)
        assert removed == lock and other.current_lock() is None
        entry = other.history()[-1]
        assert entry.event == "force-unlock" and entry.details["lock"]["id"] == lock.id
        with pytest.raises(StateError, match="lost the state lock"):
            store.put(record("Hub.a"))  # the broken holder never writes again
        again, stale = other.acquire_lock("plan", timeout=0)
        assert stale is None  # force-unlock cleared the holder: not a recovery
        assert store.current_lock() == again
        store.release_lock(lock.id)  # the old holder's release is harmless
        assert other.current_lock() == again

    def test_force_unlock_when_not_locked(self, store) -> None:
        with pytest.raises(StateError, match="not locked"):
            store.force_unlock(str(uuid.uuid4()))
        assert store.history() == []


# -- real foundryctl processes -----------------------------------------------------------


def lock_pid(observer) -> int | None:
    lock = observer.current_lock()
    return lock.pid if lock else None


class TestProcesses:
    def test_two_concurrent_applies_one_wins_the_other_names_the_holder(
            self, project: Project, azurite: Azurite, container: str, store) -> None:
        project.quickstart(api_latency=0.3)
        project.edit("version: 1\n", "version: 1\n" + blob_state_block(azurite, container))
        first = project.start("apply", "--auto-approve", env=azurite.env)
        second = project.start("apply", "--auto-approve", env=azurite.env)
        outputs = {p.pid: p.communicate(timeout=120) for p in (first, second)}
        codes = {p.pid: p.returncode for p in (first, second)}
        assert sorted(codes.values()) == [0, 1], outputs
        winner = next(pid for pid, code in codes.items() if code == 0)
        loser = next(pid for pid, code in codes.items() if code == 1)
        stderr = outputs[loser][1]
        assert "state is locked by apply by" in stderr, stderr
        assert f"(pid {winner})" in stderr
        assert "foundryctl force-unlock" in stderr
        assert "Apply complete!" in outputs[winner][0]
        assert store.current_lock() is None
        assert project.cli("plan", "--detailed-exitcode", env=azurite.env).code == 0
        assert [e.event for e in store.history()] == ["apply-started", "apply-finished"]
        assert not project.state_path.exists()  # nothing went to a local state file

    def test_killed_holder_lease_expires_and_the_next_apply_converges(
            self, project: Project, azurite: Azurite, container: str, store) -> None:
        project.write(SLOW_HUBS)
        project.edit("version: 1\n", "version: 1\n" + blob_state_block(azurite, container))
        holder = project.start("apply", "--auto-approve", "--parallelism", "1", env=azurite.env)
        wait_for(lambda: len(store.records()) >= 2)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert lock_pid(store) == holder.pid  # its lease outlives it, for at most LEASE seconds

        blocked = project.cli("plan", env=azurite.env)
        assert blocked.code == 1
        assert "state is locked by apply by" in blocked.stderr and f"(pid {holder.pid})" in blocked.stderr

        started = time.monotonic()
        recovered = project.cli("apply", "--auto-approve", "--lock-timeout", "60", env=azurite.env)
        assert recovered.code == 0, recovered
        assert time.monotonic() - started < LEASE + 15
        assert "released a stale state lock: apply by" in recovered.stderr
        assert f"(pid {holder.pid})" in recovered.stderr
        events = store.history()
        recovery = [e for e in events if e.event == "lock-recovered"]
        assert len(recovery) == 1 and recovery[0].details["stale_lock"]["pid"] == holder.pid
        # Nothing lost, nothing orphaned: state holds exactly what the control plane has.
        records = store.records()
        assert len(records) == 5 and all(r.status is Status.READY for r in records)
        assert {r.backend_id.lower() for r in records} == project.cloud_ids()  # type: ignore[union-attr]
        assert store.current_lock() is None
        assert project.cli("plan", "--detailed-exitcode", env=azurite.env).code == 0

    def test_force_unlock_from_the_cli(self, project: Project, azurite: Azurite, container: str,
                                       store) -> None:
        project.quickstart()
        project.edit("version: 1\n", "version: 1\n" + blob_state_block(azurite, container))
        lock, _ = store.acquire_lock("apply", command="foundryctl apply (on build-agent-7)")
        blocked = project.cli("plan", env=azurite.env)
        assert blocked.code == 1
        assert f"state is locked by apply by {lock.user}@{lock.host} (pid {os.getpid()})" in blocked.stderr
        assert f"foundryctl force-unlock {lock.id}" in blocked.stderr
        no_tty = project.cli("force-unlock", lock.id, env=azurite.env)
        assert no_tty.code == 1 and "pass --force" in no_tty.stderr
        wrong = project.cli("force-unlock", "some-other-id", "--force", env=azurite.env)
        assert wrong.code == 1 and "does not match the current lock" in wrong.stderr
        released = project.cli("force-unlock", lock.id, "--force", env=azurite.env)
        assert released.code == 0, released
        assert "Released the lock held by apply by" in released.stdout
        with pytest.raises(StateError, match="lost the state lock"):
            store.put(record("Hub.late"))
        assert project.cli("plan", env=azurite.env).code == 0
        assert "force-unlock" in project.cli("state", "history", env=azurite.env).stdout

    def test_the_connection_string_never_shows(self, project: Project, azurite: Azurite, container: str) -> None:
        project.quickstart()
        project.edit("version: 1\n", "version: 1\n" + blob_state_block(azurite, container))
        runs = [project.cli("plan", "--out", "saved.plan", env=azurite.env),
                project.cli("apply", "saved.plan", env=azurite.env),
                project.cli("state", "list", env=azurite.env),
                project.cli("state", "history", "--json", env=azurite.env),
                project.cli("--debug", "plan", env=azurite.env)]
        assert [r.code for r in runs[:4]] == [0, 0, 0, 0], runs
        wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
        wrong_env = {ENV_NAME: azurite.connection_string.replace(ACCOUNT_KEY, wrong_key)}
        wrong = project.cli("plan", env=wrong_env)
        assert wrong.code == 1 and "check the credentials" in wrong.stderr, wrong
        assert "AuthorizationFailure" in wrong.stderr
        traceback = project.cli("--debug", "plan", env=wrong_env)  # no SDK exception chained in
        assert traceback.code == 1 and "StateError" in traceback.stderr, traceback
        sas = (f"BlobEndpoint={azurite.account_url};SharedAccessSignature=sv=2023-11-03&ss=b&srt=sco&sp=rl"
               "&se=2099-01-01T00%3A00%3A00Z&sig=NotARealSignatureButSecret%3D")
        with_sas = project.cli("plan", env={ENV_NAME: sas})
        assert with_sas.code == 1, with_sas
        outputs = "".join(r.output for r in [*runs, wrong, traceback, with_sas])
        for secret in (ACCOUNT_KEY, wrong_key, "NotARealSignatureButSecret", "AccountKey="):
            assert secret not in outputs
        # Nor in anything written: local files, the state and history blobs, their metadata.
        for path in project.root.rglob("*"):
            if path.is_file():
                assert ACCOUNT_KEY.encode() not in path.read_bytes(), path
        with azurite.service() as service:
            client = service.get_container_client(container)
            for blob in client.list_blobs(include=["metadata"]):
                assert ACCOUNT_KEY not in json.dumps(blob.metadata or {})
                assert ACCOUNT_KEY.encode() not in client.download_blob(blob.name).readall()
