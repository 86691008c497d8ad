"""State in an Azure Storage blob, locked with a blob lease (the pattern of Terraform's azurerm backend).

For `key: K` in the container:

- `K`: the state document, one JSON object (format, version, lineage, serial, created_at and
  the resources in insertion order). While the lock is held, the blob's metadata names the
  holder (`foundryctllock`: the LockInfo as JSON), so a refused run can say who has it.
- `K.history`: an append blob, one JSON line per history entry (append-only by construction).

The lock is a lease of `lease_seconds` on `K`, renewed by a daemon thread every third of that.
Every write of the document carries the lease id and the ETag this store last saw, so the
service itself refuses a writer that lost its lease or whose view is stale: such a writer can
never overwrite. A killed holder stops renewing; its lease expires and the next run takes over
(and records `lock-recovered`). Same interface and semantics as the SQLite StateStore.

Imported only when a manifest asks for `type: azure_blob`: the CLI never loads the Azure SDK
otherwise.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import (
    BlobClient,
    BlobLeaseClient,
    BlobServiceClient,
    ContentSettings,
    LinearRetry,
)

from foundryctl.errors import StateError, StateLockedError
from foundryctl.state.lock import (
    current_command,
    current_host,
    current_user,
    process_start,
)
from foundryctl.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    Status,
)
from foundryctl.state.sqlite_store import SCHEMA_VERSION, now_iso

FORMAT = "foundryctl-state"
LOCK_METADATA = "foundryctllock"
_JSON = ContentSettings(content_type="application/json")
_LINES = ContentSettings(content_type="application/x-ndjson")
# Lease errors: the lease this store holds is gone (expired, broken, taken by another run).
_LEASE_LOST = {
    "LeaseIdMismatchWithBlobOperation", "LeaseIdMismatchWithLeaseOperation", "LeaseLost",
    "LeaseNotPresentWithBlobOperation", "LeaseNotPresentWithLeaseOperation",
    "LeaseIsBrokenAndCannotBeRenewed", "LeaseIsBreakingAndCannotBeChanged", "LeaseAlreadyBroken",
}
_SECRET_PATTERNS = [re.compile(r"(AccountKey=)[^;\s]+", re.IGNORECASE), re.compile(r"(SharedAccessSignature=)[^;\s]+", re.IGNORECASE),
                    re.compile(r"([?&]sig=)[^&\s'\"]+", re.IGNORECASE)]


@dataclass
class _Held:
    """The lock this store holds: its lease, and what the renewer learnt about it."""

    info: LockInfo
    lease: BlobLeaseClient
    lease_id: str
    metadata: dict[str, str]
    renewed_at: float  # monotonic time the last successful renewal was *sent*
    stop: threading.Event = field(default_factory=threading.Event)
    lost: str | None = None  # why the lease can no longer be trusted


def _code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _lock_json(lock: LockInfo) -> str:
    # ASCII only: metadata travels as an HTTP header. A very long command is shortened (8 KiB limit).
    data = dict(lock.__dict__, command=lock.command[:2000])
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _lock_from(metadata: Mapping[str, str] | None) -> LockInfo | None:
    raw = (metadata or {}).get(LOCK_METADATA)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return LockInfo(id=str(data["id"]), operation=str(data["operation"]), command=str(data["command"]),
                        user=str(data["user"]), host=str(data["host"]), pid=int(data["pid"]),
                        created_at=str(data["created_at"]), process_start=data.get("process_start"))
    except (ValueError, KeyError, TypeError):
        return None


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson refuses (non-str keys, huge ints), json takes as SQLite's store does
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _record(d: dict[str, Any]) -> ResourceRecord:
    return ResourceRecord(address=d["address"], kind=d["kind"], name=d["name"], backend_id=d["backend_id"],
                          status=Status(d["status"]), attributes=d["attributes"], outputs=d["outputs"],
                          dependencies=d["dependencies"], protect=bool(d["protect"]),
                          updated_serial=d["updated_serial"], updated_at=d["updated_at"])


def _endpoint(url: str) -> str:
    """An account URL without query (a SAS token) or trailing slash, for comparing and showing."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/").lower()


def service_client(config: Any, env: Mapping[str, str] | None = None) -> tuple[BlobServiceClient, list[str]]:
    """A client for the manifest's account, and the secrets that must never be shown.

    The connection string in $connection_string_env wins; without it, DefaultAzureCredential.
    """
    env = os.environ if env is None else env
    # Fail in seconds, not minutes, when the endpoint is down (the default backs off 15 s and up).
    options: dict[str, Any] = {"retry_policy": LinearRetry(backoff=1, random_jitter_range=1, retry_total=3),
                               "connection_timeout": 10, "read_timeout": 30}
    connection_string = env.get(config.connection_string_env, "").strip()
    if connection_string:
        secrets = [connection_string] + [m.group(0).split("=", 1)[1] for p in _SECRET_PATTERNS
                                         for m in p.finditer(connection_string)]
        try:
            client = BlobServiceClient.from_connection_string(connection_string, **options)
        except (ValueError, KeyError):
            raise StateError(f"${config.connection_string_env} is not a storage connection string",
                             hint="copy it from the storage account's Access keys page") from None
        if _endpoint(client.url) != _endpoint(config.account_url):
            # Never write state to another account than the manifest names.
            raise StateError(f"${config.connection_string_env} is for {_endpoint(client.url)}, but the "
                             f"manifest's state.account_url is {config.account_url}",
                             hint="use the connection string of the manifest's storage account")
        return client, secrets
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise StateError(f"no ${config.connection_string_env} is set and azure-identity is not installed",
                         hint="set the connection string, or pip install 'foundryctl[blob]'") from None
    return BlobServiceClient(config.account_url, credential=DefaultAzureCredential(), **options), []


class BlobStateStore:
    """foundryctl's record of what it manages, in a blob; thread-safe, like StateStore."""

    def __init__(self, service: BlobServiceClient, container: str, key: str, *, lease_seconds: int = 60,
                 secrets: Iterable[str] = (), env_name: str = "FOUNDRYCTL_STATE_CONNECTION_STRING"):
        if not 15 <= lease_seconds <= 60:
            raise StateError(f"lease_seconds must be 15 to 60 (Azure's lease range), not {lease_seconds}")
        self._service = service
        self._blob: BlobClient = service.get_blob_client(container, key)
        self._history_blob: BlobClient = service.get_blob_client(container, key + ".history")
        self._lease_seconds = lease_seconds
        self._secrets = [s for s in secrets if s]
        self._env_name = env_name
        self.container, self.key = container, key
        self.location = f"{_endpoint(service.url)}/{container}/{key}"
        self._mutex = threading.RLock()
        self._held: _Held | None = None
        self._raw = b""
        self._etag: str | None = None
        self._lineage = ""
        self._serial = 0
        self._ensure_document()

    @classmethod
    def open(cls, config: Any, env: Mapping[str, str] | None = None) -> BlobStateStore:
        """The store an `azure_blob` state block describes."""
        client, secrets = service_client(config, env)
        return cls(client, config.container, config.key, lease_seconds=config.lease_seconds,
                   secrets=secrets, env_name=config.connection_string_env)

    def close(self) -> None:
        held = self._held
        if held is not None:
            self.release_lock(held.info.id)
        self._service.close()

    def __enter__(self) -> BlobStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors --------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text

    def _error(self, exc: BaseException, doing: str) -> StateError:
        """A StateError for a failed storage call, never carrying a key or SAS token."""
        lines = [line for line in str(exc).splitlines() if line.strip()]
        detail = lines[0] if lines else type(exc).__name__
        code = _code(exc)
        if code and code not in detail:
            detail += f" ({code})"
        hint = None
        status = getattr(exc, "status_code", None)
        if isinstance(exc, ClientAuthenticationError) or status == 403:
            hint = (f"check the credentials: the connection string in ${self._env_name}, or without it "
                    "your Azure sign-in (DefaultAzureCredential), which needs the Storage Blob Data "
                    "Contributor role on the container")
        elif code == "ContainerNotFound":
            hint = f"create the container first: az storage container create --name {self.container} ..."
        elif isinstance(exc, ServiceRequestError):
            hint = "is the storage account's endpoint reachable from here?"
        return StateError(self._scrub(f"{doing} {self.location}: {detail}"), hint=hint)

    # -- the document --------------------------------------------------------------------

    def _new_document(self) -> bytes:
        return _dumps({"format": FORMAT, "version": SCHEMA_VERSION, "lineage": str(uuid.uuid4()),
                       "serial": 0, "created_at": now_iso(), "resources": []})

    def _ensure_document(self) -> None:
        """Read the document, creating it (with a new lineage) when the blob does not exist."""
        with self._mutex:
            try:
                self._refresh()
                return
            except ResourceNotFoundError as exc:
                if _code(exc) != "BlobNotFound":
                    raise self._error(exc, "cannot open state") from None
            except AzureError as exc:
                raise self._error(exc, "cannot open state") from None
            try:
                self._blob.upload_blob(self._new_document(), overwrite=False, content_settings=_JSON)
            except ResourceExistsError:
                pass  # another run created it first: its lineage stands
            except AzureError as exc:
                raise self._error(exc, "cannot create state") from None
            self._read()

    def _refresh(self) -> None:
        """Bring the cached document up to date (a conditional GET: 304 when nothing changed).

        While this store holds a live lease nobody else can change the blob, so the cache stands.
        """
        held = self._held
        if held is not None and held.lost is None and self._etag is not None:
            return
        try:
            if self._etag is not None:
                downloader = self._blob.download_blob(etag=self._etag, match_condition=MatchConditions.IfModified)
            else:
                downloader = self._blob.download_blob()
            raw = downloader.readall()
        except HttpResponseError as exc:
            if getattr(exc, "status_code", None) == 304:
                return
            raise
        self._parse_into_cache(raw, downloader.properties.etag)

    def _parse_into_cache(self, raw: bytes, etag: str) -> None:
        if not raw.strip():
            raise StateError(f"{self.location} is an empty blob, not a foundryctl state document",
                             hint="delete it, or point `key` at another blob")
        try:
            doc = _loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise StateError(f"{self.location} is not a foundryctl state document",
                             hint="check the manifest's state.container and state.key")
        if int(doc.get("version", 0)) > SCHEMA_VERSION:
            raise StateError(f"state {self.location} was written by a newer foundryctl "
                             f"(schema {doc['version']}); upgrade foundryctl")
        self._raw, self._etag = raw, etag
        self._lineage, self._serial = str(doc["lineage"]), int(doc["serial"])

    def _read(self) -> bytes:
        with self._mutex:
            try:
                self._refresh()
            except AzureError as exc:
                raise self._error(exc, "cannot read state") from None
            return self._raw

    @property
    def lineage(self) -> str:
        self._read()
        return self._lineage

    @property
    def serial(self) -> int:
        self._read()
        return self._serial

    def snapshot(self) -> StateSnapshot:
        doc = _loads(self._read())  # parsed afresh: callers may change the records they get
        records = {d["address"]: _record(d) for d in doc["resources"]}
        return StateSnapshot(str(doc["lineage"]), int(doc["serial"]), records)

    def get(self, address: str) -> ResourceRecord | None:
        return self.snapshot().records.get(address)

    def records(self) -> list[ResourceRecord]:
        return list(self.snapshot().records.values())

    def write(self, puts: Iterable[ResourceRecord] = (), removes: Iterable[str] = ()) -> int:
        """Store and forget records in one conditional upload; returns the new serial."""
        puts, removes = list(puts), list(removes)  # consumed before anything is sent
        with self._mutex:
            for _ in range(10):
                held = self._live_lease()
                raw = self._read()
                doc = _loads(raw)
                serial = int(doc["serial"]) + 1
                stamp = now_iso()
                # A dict keeps insertion order, and an update keeps a record's place: listings
                # stay in creation order, as in the SQLite store.
                resources = {d["address"]: d for d in doc["resources"]}
                for record in puts:
                    record.updated_serial, record.updated_at = serial, stamp
                    resources[record.address] = record.to_dict()
                for address in removes:
                    resources.pop(address, None)
                doc.update(serial=serial, resources=list(resources.values()))
                body = _dumps(doc)
                try:
                    response = self._blob.upload_blob(
                        body, overwrite=True, etag=self._etag, match_condition=MatchConditions.IfNotModified,
                        lease=held.lease_id if held else None, metadata=held.metadata if held else {},
                        content_settings=_JSON)
                except HttpResponseError as exc:
                    if held is not None and _code(exc) == "ConditionNotMet" and self._landed(body, serial):
                        return serial
                    self._write_refused(exc, held)
                    self._etag = None  # someone else wrote first (no lock held): read again, redo
                    continue
                except AzureError as exc:
                    raise self._error(exc, "cannot write state") from None
                self._raw, self._etag, self._serial = body, response["etag"], serial
                return serial
            raise StateError(f"cannot write state {self.location}: it kept changing underneath",
                             hint="take the lock (plan/apply do) so writes do not race")

    def _landed(self, body: bytes, serial: int) -> bool:
        """Whether the blob already holds `body`: the SDK retried an upload whose first attempt
        succeeded but whose answer was lost, and the retry's stale ETag was refused."""
        try:
            downloader = self._blob.download_blob()
            raw = downloader.readall()
        except AzureError:
            return False
        if raw != body:
            return False
        self._raw, self._etag, self._serial = body, downloader.properties.etag, serial
        return True

    def _write_refused(self, exc: HttpResponseError, held: _Held | None) -> None:
        """Raise for a refused upload, unless it is a lost race that a re-read can redo."""
        code = _code(exc)
        if held is not None:
            if code in _LEASE_LOST:
                held.lost = f"the service says {code}"
            elif code == "ConditionNotMet":
                held.lost = "the state blob changed although this run held the lease"
            else:
                raise self._error(exc, "cannot write state") from None
            raise self._lost(held) from None
        if code == "LeaseIdMissing":  # another run holds the lock
            holder = self.current_lock()
            if holder is not None:
                raise self._locked(holder) from None
            return
        if code != "ConditionNotMet":
            raise self._error(exc, "cannot write state") from None

    def put(self, record: ResourceRecord) -> int:
        return self.write(puts=[record])

    def remove(self, address: str) -> int:
        return self.write(removes=[address])

    # -- history -------------------------------------------------------------------------

    def append_history(self, event: str, details: dict[str, Any]) -> None:
        serial = self.serial
        line = _dumps({"serial": serial, "at": now_iso(), "event": event, "user": current_user(),
                       "host": current_host(), "pid": os.getpid(), "command": current_command(),
                       "details": details}) + b"\n"
        try:
            try:
                self._history_blob.append_block(line)
            except ResourceNotFoundError as exc:
                if _code(exc) != "BlobNotFound":
                    raise
                try:
                    self._history_blob.create_append_blob(match_condition=MatchConditions.IfMissing,
                                                          content_settings=_LINES)
                except ResourceExistsError:
                    pass
                self._history_blob.append_block(line)
        except AzureError as exc:
            raise self._error(exc, "cannot append to the history of") from None

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        try:
            raw = self._history_blob.download_blob().readall()
        except ResourceNotFoundError as exc:
            if _code(exc) == "BlobNotFound":
                return []
            raise self._error(exc, "cannot read the history of") from None
        except AzureError as exc:
            raise self._error(exc, "cannot read the history of") from None
        entries = []
        for number, line in enumerate(raw.splitlines(), start=1):  # the id is the line number
            if line.strip():
                d = _loads(line)
                entries.append(HistoryEntry(number, d["serial"], d["at"], d["event"], d["user"], d["host"],
                                            d["pid"], d["command"], d["details"]))
        return entries[-int(limit):] if limit else entries

    # -- lock ----------------------------------------------------------------------------

    def _lock_state(self) -> tuple[LockInfo | None, Any]:
        """The holder of a live lease (None when free) and the blob's properties."""
        try:
            props = self._blob.get_blob_properties()
        except AzureError as exc:
            raise self._error(exc, "cannot read the lock of") from None
        if props.lease.status != "locked":
            return None, props  # metadata left by a holder whose lease ran out names nobody
        holder = _lock_from(props.metadata)
        if holder is None:  # leased by something else, or a holder between lease and metadata
            modified = props.last_modified.isoformat().replace("+00:00", "Z") if props.last_modified else ""
            holder = LockInfo(id="unknown", operation="a lease", command="(not taken by foundryctl)",
                              user="unknown", host="unknown", pid=0, created_at=modified)
        return holder, props

    def current_lock(self) -> LockInfo | None:
        return self._lock_state()[0]

    def _locked(self, holder: LockInfo) -> StateLockedError:
        return StateLockedError(
            f"state is locked by {holder.describe()}\n  lock id: {holder.id}", holder,
            hint=(f"wait for it to finish (a holder that stopped renewing its lease loses it within "
                  f"{self._lease_seconds} s), retry with --lock-timeout, or, if you are sure it is "
                  f"gone, run: foundryctl force-unlock {holder.id}"))

    def _lost(self, held: _Held) -> StateError:
        return StateError(f"this run lost the state lock on {self.location} ({held.lost}); "
                          "nothing was written", hint="another run may hold the lock now; run "
                                                      "`foundryctl plan` again to see where things stand")

    def _live_lease(self) -> _Held | None:
        """The lease to write under (None when this store holds no lock); raises when it is lost."""
        held = self._held
        if held is None:
            return None
        if held.lost is None and time.monotonic() - held.renewed_at >= self._lease_seconds - 1:
            held.lost = f"the lease was not renewed for {self._lease_seconds} s"
        if held.lost is not None:
            raise self._lost(held)
        return held

    def acquire_lock(self, operation: str, *, timeout: float = 0.0,
                     command: str | None = None) -> tuple[LockInfo, LockInfo | None]:
        """Take the state lock, waiting up to `timeout` seconds for the holder.

        A holder whose lease expired (it stopped renewing: killed, or cut off) is replaced and
        returned as the second item, so the caller can say so. Raises StateLockedError on timeout.
        """
        start = time.monotonic()
        deadline = start + timeout
        mine = LockInfo(id=str(uuid.uuid4()), operation=operation, command=command or current_command(),
                        user=current_user(), host=current_host(), pid=os.getpid(),
                        created_at=now_iso(), process_start=process_start(os.getpid()))
        delay = 0.1
        while True:
            lease_id = str(uuid.uuid4())  # private: the lock id is shown to everyone, this is not
            lease = BlobLeaseClient(self._blob, lease_id=lease_id)
            sent = time.monotonic()
            try:
                lease.acquire(lease_duration=self._lease_seconds)
            except ResourceNotFoundError as exc:
                if _code(exc) != "BlobNotFound":
                    raise self._error(exc, "cannot lock state") from None
                self._etag = None
                self._ensure_document()  # deleted since we opened it: start a new lineage
                continue
            except HttpResponseError as exc:
                if _code(exc) != "LeaseAlreadyPresent":
                    raise self._error(exc, "cannot lock state") from None
                holder = self.current_lock()
                now = time.monotonic()
                # A holder between taking its lease and naming itself gets a moment to do so.
                naming = holder is not None and holder.id == "unknown" and now - start < 2.0
                if holder is not None and not naming and now >= deadline:
                    raise self._locked(holder) from None
                time.sleep(max(0.0, min(delay, deadline - now)) if not naming else 0.1)
                delay = min(delay * 1.5, 1.0)
                continue
            except AzureError as exc:
                raise self._error(exc, "cannot lock state") from None
            return self._took(lease, lease_id, mine, sent)

    def _took(self, lease: BlobLeaseClient, lease_id: str, mine: LockInfo,
              sent: float) -> tuple[LockInfo, LockInfo | None]:
        """The lease is ours: name ourselves, read the state afresh, start renewing."""
        metadata = {LOCK_METADATA: _lock_json(mine)}
        try:
            props = self._blob.get_blob_properties(lease=lease_id)
            stale = _lock_from(props.metadata)  # a holder that never released: its lease ran out
            self._blob.set_blob_metadata(metadata, lease=lease_id)
            with self._mutex:
                self._etag = None
                self._refresh()
                held = _Held(mine, lease, lease_id, metadata, renewed_at=sent)
                self._held = held
        except AzureError as exc:
            try:
                lease.release()
            except AzureError:
                pass  # it expires by itself
            raise self._error(exc, "cannot lock state") from None
        threading.Thread(target=self._renew, args=(held,), name="foundryctl-state-lease", daemon=True).start()
        if stale is not None:
            try:
                self.append_history("lock-recovered", {"stale_lock": stale.__dict__})
            except BaseException:
                self.release_lock(mine.id)  # the caller never learns of the lock: give it back
                raise
        return mine, stale

    def _renew(self, held: _Held) -> None:
        """Renew every third of the lease; a failure the service is sure of loses the lock at once,
        a network one only once the lease may have run out (every write checks `lost`)."""
        interval = self._lease_seconds / 3
        while not held.stop.wait(interval):
            sent = time.monotonic()
            try:
                held.lease.renew()
                held.renewed_at = sent
            except HttpResponseError as exc:
                if getattr(exc, "status_code", None) in (409, 412) or _code(exc) in _LEASE_LOST:
                    held.lost = f"renewing the lease failed: {_code(exc) or exc.status_code}"
                    return
            except Exception:  # network trouble: try again next round
                pass
            if time.monotonic() - held.renewed_at >= self._lease_seconds:
                held.lost = f"the lease could not be renewed for {self._lease_seconds} s"
                return

    def release_lock(self, lock_id: str) -> None:
        with self._mutex:
            held = self._held
            if held is None or held.info.id != lock_id:
                return  # not ours to release (as with SQLite, another id does nothing)
            self._held = None
            held.stop.set()
            try:
                response = self._blob.set_blob_metadata({}, lease=held.lease_id)  # name nobody
                if self._etag is not None:
                    self._etag = response["etag"]  # the content is unchanged
                held.lease.release()
            except AzureError:
                pass  # lost meanwhile, or unreachable: the lease runs out by itself

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Break the lease of the lock `lock_id` (for a holder that can no longer release it)."""
        holder, props = self._lock_state()
        if holder is None:
            raise StateError("the state is not locked")
        if holder.id != lock_id:
            raise StateError(f"lock id {lock_id} does not match the current lock ({holder.id}, "
                             f"held by {holder.describe()})")
        try:
            # Conditional on the ETag read above: a new holder names itself (changing the ETag),
            # so its lease is never broken by a force-unlock meant for the previous one.
            BlobLeaseClient(self._blob).break_lease(lease_break_period=0, etag=props.etag,
                                                    match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError as exc:
            raise self._error(exc, "cannot unlock state") from None
        except HttpResponseError as exc:
            if _code(exc) == "ConditionNotMet":
                raise StateError("the lock changed hands while unlocking; nothing was released",
                                 hint="run `foundryctl force-unlock` again with the current lock id") from None
            raise self._error(exc, "cannot unlock state") from None
        except AzureError as exc:
            raise self._error(exc, "cannot unlock state") from None
        try:
            self._blob.set_blob_metadata({}, etag=props.etag, match_condition=MatchConditions.IfNotModified)
        except AzureError:
            pass  # taken already by the next run, which named itself
        with self._mutex:
            held = self._held
            if held is not None and held.info.id == lock_id:
                held.lost = "this store's lock was force-unlocked"
            self._etag = None
        self.append_history("force-unlock", {"lock": holder.__dict__})
        return holder
