"""Dataset on Azure: the JSONL file registered as a `uri_file` data asset of the project
(`NAME`, and `NAME-validation` for validation data), uploaded through azure-ai-ml.

Versions. Azure limits a data asset version to 30 characters, so the full sha256 the kind
computes (the `version` attribute) cannot be the asset version. The asset version is a
24-hex-digit content key (`asset_version`): the first 24 digits of the file's sha256, or,
with a `validation: {split, seed}`, of sha256("<sha256>:split:<split>:<seed>"), so that both
halves share one key and a FineTuneJob can name them from its own attributes. The full
sha256 of what each asset holds is in its tags (`foundryctl.sha256`), with the size, the
example count and, on the training asset, the foundryctl attributes (`foundryctl.attributes`,
JSON) a refresh reads back.

HTTP (azure-ai-ml 1.35 on the ARM endpoint; "data version" = .../workspaces/P/data/N/versions/V):
- read: GET the data version of the last applied content key (api-version 2023-04-01-preview,
  through the generic resources client, because azure-ai-ml's Data entity drops `isArchived`,
  which is how a deleted asset shows); an archived version, or one without foundryctl's tags,
  is absent. Import (no key known): GET .../data/N for its latestVersion, then that version.
- create/update: the same GET first; only a missing version is uploaded:
  `MLClient.data.create_or_update(Data(path=<file>))` sends GET .../datastores/workspaceblobstore,
  POST .../datastores/workspaceblobstore/listSecrets (2024-10-01-preview), HEAD the blob
  https://<account>.blob.core.windows.net/<container>/LocalUpload/<hash>/<file> (an upload
  already confirmed in its metadata is not sent again), PUT the blob, PUT ?comp=metadata, then
  PUT the data version (2023-04-01-preview). An existing version whose tags or description
  differ, or that is archived, gets one PUT of the data version pointing at its stored blob.
  Validation data first, training last (the training asset carries the attributes, so a crash
  in between shows as a pending update). An update archives the versions it replaces.
- delete: `MLClient.data.archive` of both assets' versions (GET + PUT isArchived=true).
  azure-ai-ml has no delete for data (the REST API lists a DELETE of a data version, but Azure
  ML's maintainers point to archiving: "Deleting a Dataset is no longer supported by the Azure
  ML APIs ... Archive", microsoft/vscode-tools-for-ai#1761, 2022); archiving hides the
  version and keeps it readable by the jobs and models that used it. A version or project
  already gone is nothing to do.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.azure import storage_access
from foundryctl.backends.azure.errors import (
    backend_error,
    calling,
    is_not_found,
    read_or_none,
    sdk_errors,
)
from foundryctl.backends.azure.handlers.base import (
    AzureHandler,
    json_tag,
    parse_child_id,
    read_json_tag,
)
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.datasets import planned_report, task_options
from foundryctl.errors import BackendError
from foundryctl.kinds.dataset import VALIDATION_SUFFIX

# The api-version azure-ai-ml 1.35 reads and writes data versions with.
DATA_API_VERSION = "2023-04-01-preview"
# Azure refuses data asset versions longer than 30 characters.
VERSION_CHARS = 24
TAG = "foundryctl."
ATTRIBUTES_TAG = TAG + "attributes"
DELETE_NOTE = ("Azure archives data versions instead of deleting them (jobs and models that used them "
               "can still read them)")


def _storage_hint(exc: BaseException) -> str | None:
    """What to do about a blob upload the storage account refused (identity-only storage)."""
    text = str(exc)
    # azure-ai-ml rewords Storage's 403 AuthorizationPermissionMismatch ("You don't have
    # permission to alter this storage account. Ensure that you have been assigned both Storage
    # Blob Data Reader and Storage Blob Data Contributor roles.")
    if any(m in text for m in ("AuthorizationPermissionMismatch", "not authorized to perform this operation using",
                               "permission to alter this storage account")):
        return (f"the project's storage takes only Entra tokens, and the upload used yours: assign "
                f"{storage_access.ROLE} on the workspace's storage account (docs/azure-backend.md, required roles)")
    if "KeyBasedAuthenticationNotPermitted" in text:
        return ("the storage account refuses shared-key access: make the workspace's datastores "
                "identity-based (systemDatastoresAuthMode: identity) and assign "
                f"{storage_access.ROLE} (docs/azure-backend.md, required roles)")
    return None


def asset_version(sha256: str, split: str | None = None) -> str:
    """The data asset version of content whose sha256 is `sha256`; `split` is the split marker
    ("split:0.1:7") when the asset is one half of a split of that content."""
    if split is None:
        return sha256[:VERSION_CHARS]
    return hashlib.sha256(f"{sha256}:{split}".encode()).hexdigest()[:VERSION_CHARS]


def split_marker(attributes: dict[str, Any]) -> str | None:
    """"split:SPLIT:SEED" for a dataset that holds out part of its file (the same string the
    FineTuneJob kind records as its validation_version), else None."""
    from foundryctl.kinds.finetune_job import _split_of  # one definition of the marker

    return _split_of(attributes)


def content_key(attributes: dict[str, Any]) -> str | None:
    """The asset version both of a dataset's assets have, from its attributes."""
    version = attributes.get("version")
    return asset_version(version, split_marker(attributes)) if version else None


def validation_key(attributes: dict[str, Any]) -> str | None:
    """The asset version of a dataset's validation asset (None: it has none)."""
    validation = attributes.get("validation") or {}
    if "path" in validation:
        return asset_version(attributes["validation_version"]) if attributes.get("validation_version") else None
    return content_key(attributes) if validation else None


class DatasetHandler(AzureHandler):
    kind = "Dataset"

    def __init__(self, backend: Any):
        super().__init__(backend)
        self._storage_checked: dict[str, list[str]] = {}  # project -> its storage notes

    def identify(self, target: Target) -> str:
        return self._data_id(target.attributes["project"], target.name)

    def _data_id(self, project: str, name: str) -> str:
        return arm.data_id(self.workspace_id(project), name)

    # -- read ----------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        project, name = parse_child_id(target.backend_id, "data", "a data asset") if target.backend_id else (
            target.attributes["project"], target.name)
        key = content_key(target.attributes)
        if key is None:
            return self._observe_latest(project, name)
        return self._observe(project, name, key)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        project, asset = parse_child_id(backend_id, "data", "a data asset")
        return self._observe_latest(project, asset)

    def _observe_latest(self, project: str, name: str) -> Observed | None:
        container = self._get(self._data_id(project, name), f"reading data asset {name}")
        latest = (container or {}).get("properties", {}).get("latestVersion")
        return self._observe(project, name, latest) if latest else None

    def _observe(self, project: str, name: str, key: str) -> Observed | None:
        training = self._version(project, name, key)
        attributes = read_json_tag(training["tags"].get(ATTRIBUTES_TAG)) if training is not None else None
        if training is None or not isinstance(attributes, dict):
            return None  # not foundryctl's (or its tag was edited out of shape)
        attributes["description"] = training["description"]  # Azure's, should it change there
        other = validation_key(attributes)
        validation = self._version(project, name + VALIDATION_SUFFIX, other) if other else None
        return self._observed(project, name, key, attributes, training, validation)

    def _observed(self, project: str, name: str, key: str, attributes: dict[str, Any],
                  training: dict[str, Any], validation: dict[str, Any] | None) -> Observed:
        token_counts = training["tags"].get(TAG + "token_counts")
        outputs = {
            "id": self._data_id(project, name), "asset": f"{name}:{key}",
            "training": _asset_outputs(training),
            "validation": _asset_outputs(validation) if validation is not None else None,
            "retained_versions": [],  # replaced versions are archived (jobs can still read them)
            "token_counts": read_json_tag(token_counts),
        }
        return Observed(self._data_id(project, name), attributes, outputs)

    def _version(self, project: str, name: str, version: str) -> dict[str, Any] | None:
        """A data version as Azure has it (None: absent or archived)."""
        resource = self._get(arm.data_version_id(self.workspace_id(project), name, version),
                             f"reading data asset {name}:{version}")
        if resource is None or resource.get("properties", {}).get("isArchived"):
            return None
        props = resource.get("properties") or {}
        return {"id": resource.get("id"), "name": name, "version": version, "uri": props.get("dataUri"),
                "description": props.get("description") or "", "tags": dict(props.get("tags") or {})}

    def _get(self, resource_id: str, doing: str) -> dict[str, Any] | None:
        resources = self.clients.resources.resources
        found = read_or_none(lambda: resources.get_by_id(resource_id, api_version=DATA_API_VERSION), doing)
        if found is None:
            return None
        return {"id": found.id, "name": found.name, "properties": found.properties or {}}

    # -- plan-time check of identity-only storage ------------------------------------------

    def create_notes(self, target: Target) -> list[str]:
        return self._storage_notes(target.attributes["project"])

    def _storage_notes(self, project: str) -> list[str]:
        """A note when the upload would need a data role the signed-in identity may lack
        (storage_access.py); nothing when the datastore uses the account key or the role is there."""
        if project in self._storage_checked:
            return self._storage_checked[project]
        try:
            store = storage_access.default_datastore(self.clients.ml(project))
        except sdk_errors() as exc:
            # a project this plan creates has no datastore yet: nothing to say before it exists
            notes = [] if is_not_found(exc) else [
                f"could not read project {project}'s datastore to check storage access ({exc.__class__.__name__})"]
            self._storage_checked[project] = notes
            return notes
        notes: list[str] = []
        if store.identity_based:
            account_id = (f"{self.resource_group_id}/providers/Microsoft.Storage/storageAccounts/"
                          f"{store.account}")
            try:
                token = self.backend.credential.get_token(f"{self.config.arm_endpoint.rstrip('/')}/.default").token
            except sdk_errors():
                token = ""
            principal = storage_access.token_object_id(token)
            needs = (f"project {project}'s datastore is identity-based (shared-key access disabled): the "
                     f"upload uses your own token and needs {storage_access.ROLE} on storage account "
                     f"{store.account}")
            if principal is None:
                notes.append(f"{needs}; whose token it is cannot be read, so this is not checked")
            else:
                listing: list[Any] | None
                try:
                    listing = list(self.clients.authorization.role_assignments.list_for_scope(
                        account_id, filter=f"principalId eq '{principal}'"))
                except sdk_errors():
                    listing = None
                if listing is None:
                    notes.append(f"{needs}; the role assignments there cannot be read, so this is not checked")
                elif not storage_access.writer_roles(listing, principal, account_id):
                    notes.append(f"{needs}, which {principal} does not hold there (a group's assignment "
                                 f"is not seen): `az role assignment create --assignee {principal} --role "
                                 f"\"{storage_access.ROLE}\" --scope {account_id}`")
        self._storage_checked[project] = notes
        return notes

    # -- write ---------------------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._register(target, None, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._register(target, before, progress)

    def _register(self, target: Target, before: dict[str, Any] | None, progress: Progress) -> Observed:
        from foundryctl.datasets import ValidationOptions, validate_dataset, write_split

        a = target.attributes
        project, name = a["project"], target.name
        source = self._source(a, "path")
        split = a.get("validation") or {}
        report = planned_report(source, a)
        key = asset_version(report.sha256, split_marker(a))
        with tempfile.TemporaryDirectory(prefix="foundryctl-split-") as scratch:
            if report.split is not None:
                train, held_out = write_split(source, report, Path(scratch) / "training.jsonl",
                                              Path(scratch) / "validation.jsonl")
                training = _Part(train.path, train.sha256, train.size, train.examples)
                validation: _Part | None = _Part(held_out.path, held_out.sha256, held_out.size, held_out.examples)
            else:
                training = _Part(source, report.sha256, report.size, report.examples)
                validation = None
                if "path" in split:
                    check = validate_dataset(self._source(a, "validation"),
                                             ValidationOptions(count_tokens=False, role="validation",
                                                               **task_options(a)))
                    if check.sha256 != a.get("validation_version"):
                        raise BackendError("ContentMismatch", "the validation file changed since the "
                                           "plan was made", hint="run `foundryctl plan` again")
                    validation = _Part(self._source(a, "validation"), check.sha256, check.size, check.examples)
            # The validation asset of a file is keyed by that file's own content; of a split,
            # by the training file's key (the FineTuneJob names both from its attributes).
            held_key = asset_version(validation.sha256) if validation is not None and "path" in split else key
            stored_validation = None
            if validation is not None:
                stored_validation = self._store(project, name + VALIDATION_SUFFIX, held_key, validation,
                                                f"validation data of {name}", {"role": "validation"}, progress)
            token_counts = {"total": report.total_tokens.total, "assistant": report.assistant_tokens.total,
                            "counting": report.token_counting}
            stored = self._store(project, name, key, training, a.get("description", ""), {
                "role": "training", "attributes": json_tag(a),
                "token_counts": json_tag(token_counts),
                "validation": f"{name}{VALIDATION_SUFFIX}:{held_key}" if validation is not None else ""},
                progress)
        if before is not None:
            self._retire(project, name, before, {(name, key), (name + VALIDATION_SUFFIX, held_key)}
                         if validation is not None else {(name, key)}, progress)
        return self._observed(project, name, key, dict(a), stored, stored_validation)

    def _store(self, project: str, name: str, key: str, part: _Part, description: str,
               extra_tags: dict[str, str], progress: Progress) -> dict[str, Any]:
        """Make data version NAME:KEY hold `part`, uploading only what Azure lacks."""
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Data

        tags = {TAG + "owner": name.removesuffix(VALIDATION_SUFFIX) if extra_tags["role"] == "validation" else name,
                TAG + "sha256": part.sha256, TAG + "size": str(part.size), TAG + "examples": str(part.examples),
                **{TAG + k: v for k, v in extra_tags.items() if v}}
        resource = self._get(arm.data_version_id(self.workspace_id(project), name, key), f"reading data asset {name}:{key}")
        props = (resource or {}).get("properties", {})
        if resource is not None and (props.get("tags") or {}).get(TAG + "sha256") not in (None, part.sha256):
            raise BackendError("Conflict", f"data asset {name}:{key} already holds other content "
                               f"(sha256 {props['tags'][TAG + 'sha256'][:12]}...)",
                               hint=f"archive that version (az ml data archive --name {name} --version {key}) "
                                    "and apply again")
        ml = self.clients.ml(project)
        doing = f"registering data asset {name}:{key}"
        if resource is None:
            try:
                data = ml.data.create_or_update(Data(
                    type=AssetTypes.URI_FILE, path=str(part.path), name=name, version=key,
                    description=description, tags=tags))
            except sdk_errors() as exc:
                raise backend_error(exc, doing, hint=_storage_hint(exc)) from None
            progress(f"uploaded {name} ({part.size:,} bytes, {part.examples:,} examples)")
            uri = data.path
        else:
            uri = props.get("dataUri")
            if props.get("isArchived") or (props.get("tags") or {}) != tags or (props.get("description") or "") != description:
                # Same content: point the version at the blob already stored (no upload); this
                # also brings back a version an earlier delete archived.
                calling(doing, ml.data.create_or_update, Data(
                    type=AssetTypes.URI_FILE, path=uri, name=name, version=key, description=description, tags=tags))
            progress(f"{name}: content already in the data store, nothing uploaded")
        return {"id": arm.data_version_id(self.workspace_id(project), name, key), "name": name, "version": key,
                "uri": uri, "description": description, "tags": tags}

    def _retire(self, project: str, name: str, before: dict[str, Any], keep: set[tuple[str, str]],
                progress: Progress) -> None:
        """Archive the versions an update replaced."""
        for asset, version in _assets(name, before):
            if (asset, version) not in keep and self._archive(project, asset, version):
                progress(f"archived {asset}:{version} (replaced)")

    def _archive(self, project: str, name: str, version: str) -> bool:
        """Archive a data version; False when it is not there (or its project is gone)."""
        try:
            self.clients.ml(project).data.archive(name, version=version)
        except sdk_errors() as exc:
            if is_not_found(exc):
                return False
            raise backend_error(exc, f"archiving data asset {name}:{version}") from None
        return True

    def _source(self, attributes: dict[str, Any], which: str) -> Path:
        """The file to upload; datasets store paths relative to the manifest's root."""
        written = attributes["path"] if which == "path" else attributes["validation"]["path"]
        path = self.backend.root / written  # an absolute `written` stays as it is
        if not path.is_file():
            raise BackendError("FileNotFound", f"{path} does not exist any more",
                               hint="restore the file or run `foundryctl plan` again")
        return path

    def delete_notes(self, observed: Observed) -> list[str]:
        return [DELETE_NOTE]

    def delete(self, target: Target, progress: Progress) -> None:
        a = target.attributes
        project, name = parse_child_id(target.backend_id, "data", "a data asset") if target.backend_id else (a["project"], target.name)
        for asset, version in _assets(name, a):
            if self._archive(project, asset, version):
                progress(f"archived data asset {asset}:{version}")


def _assets(name: str, attributes: dict[str, Any]) -> list[tuple[str, str]]:
    """(asset name, version) of what a dataset with these attributes registered, validation first."""
    out = []
    other = validation_key(attributes)
    if other:
        out.append((name + VALIDATION_SUFFIX, other))
    key = content_key(attributes)
    if key:
        out.append((name, key))
    return out


class _Part:
    """One file registered as one asset version."""

    def __init__(self, path: Path, sha256: str, size: int, examples: int):
        self.path, self.sha256, self.size, self.examples = path, sha256, size, examples


def _asset_outputs(version: dict[str, Any]) -> dict[str, Any]:
    tags = version["tags"]
    return {"id": version["id"], "version": version["version"], "uri": version["uri"],
            "sha256": tags.get(TAG + "sha256"), "size": _int(tags.get(TAG + "size")),
            "examples": _int(tags.get(TAG + "examples"))}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None

