"""Dataset on the local cloud: files in the project's content-addressed data store,
registered as versioned data assets (`NAME` and, with validation data, `NAME-validation`).

The asset version is the sha256 of the bytes registered, so unchanged content is never
copied or registered twice. On update the new version is registered first; older versions
are deleted unless a job or model still uses them, in which case they stay (and are listed
in the outputs) until nothing does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.datasets import planned_report, task_options
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError
from foundryctl.kinds.dataset import VALIDATION_SUFFIX

WRITE_ACTION = "Microsoft.MachineLearningServices/workspaces/data/versions/write"
DELETE_ACTION = "Microsoft.MachineLearningServices/workspaces/data/versions/delete"


class DatasetHandler(LocalHandler):
    kind = "Dataset"

    def _workspace(self, attributes: dict[str, Any]) -> str:
        return arm.workspace_id(self.subscription, self.resource_group, attributes["project"])

    def identify(self, target: Target) -> str:
        return arm.data_id(self._workspace(target.attributes), target.name)

    # -- read ----------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        return self._observe(target.backend_id or self.identify(target))

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self._observe(backend_id)

    def _observe(self, container_id: str) -> Observed | None:
        container = self.cloud.get(container_id)
        if container is None or container.type != arm.DATA:
            return None
        versions = {v.name: v for v in self.cloud.data_versions(container.id)}
        latest = versions.get(container.properties.get("latestVersion", ""))
        managed = container.properties.get("foundryctl", {})
        if latest is None or not managed:
            return None
        attributes = dict(managed.get("attributes", {}))
        validation = self._latest(self._validation_container(container.id), owner=container.name)
        outputs: dict[str, Any] = {
            "id": container.id, "asset": f"{container.name}:{latest.name}",
            "training": _asset_outputs(latest),
            "validation": _asset_outputs(validation) if validation is not None and attributes.get("validation") else None,
            # Older versions a job or model still uses (the rest are pruned on every apply).
            "retained_versions": sorted(v for v, r in versions.items()
                                        if v != latest.name and self.cloud.referenced_by(r.id)),
            "token_counts": managed.get("token_counts"),
        }
        return Observed(container.id, attributes, outputs)

    @staticmethod
    def _validation_container(container_id: str) -> str:
        return container_id + VALIDATION_SUFFIX

    def _latest(self, container_id: str, owner: str) -> ArmResource | None:
        container = self.cloud.get(container_id)
        if container is None or container.properties.get("foundryctl", {}).get("owner") != owner:
            return None
        wanted = container.properties.get("latestVersion")
        return next((v for v in self.cloud.data_versions(container_id) if v.name == wanted), None)

    # -- write ---------------------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._register(target, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._register(target, progress)

    def _register(self, target: Target, progress: Progress) -> Observed:
        from foundryctl.datasets import ValidationOptions, validate_dataset, write_split

        a = target.attributes
        workspace = self._workspace(a)
        self.backend.authorize(WRITE_ACTION, workspace)
        source = self._source(target, "path")
        split = a.get("validation") or {}
        report = planned_report(source, a)
        training_name, validation_name = target.name, target.name + VALIDATION_SUFFIX
        with tempfile.TemporaryDirectory(prefix="foundryctl-split-") as scratch:
            if report.split is not None:
                train, held_out = write_split(source, report, Path(scratch) / "training.jsonl",
                                              Path(scratch) / "validation.jsonl")
                training = (train.path, train.sha256, train.size, train.examples)
                validation: tuple | None = (held_out.path, held_out.sha256, held_out.size, held_out.examples)
            else:
                training = (source, report.sha256, report.size, report.examples)
                validation = None
                if "path" in split:
                    check = validate_dataset(self._source(target, "validation"),
                                             ValidationOptions(count_tokens=False, role="validation",
                                                               **task_options(a)))
                    if check.sha256 != a.get("validation_version"):
                        raise BackendError("ContentMismatch", "the validation file changed since the "
                                           "plan was made", hint="run `foundryctl plan` again")
                    validation = (self._source(target, "validation"), check.sha256, check.size, check.examples)
            # Validation data first, training last: the training container carries the
            # attributes a refresh reads, so a crash in between shows as a pending update.
            if validation is not None:
                self._store(workspace, validation_name, validation, progress, {
                    "description": f"validation data of {training_name}",
                    "foundryctl": {"owner": training_name, "role": "validation"}})
            token_counts = {"total": report.total_tokens.total, "assistant": report.assistant_tokens.total,
                            "counting": report.token_counting}
            self._store(workspace, training_name, training, progress, {
                "description": a.get("description", ""),
                "foundryctl": {"owner": training_name, "role": "training", "attributes": a,
                               "token_counts": token_counts}})
        container_id = arm.data_id(workspace, training_name)
        self._prune(container_id)
        self._prune(self._validation_container(container_id), owner=training_name,
                    everything=validation is None)
        observed = self._observe(container_id)
        assert observed is not None
        return observed

    def _store(self, workspace: str, name: str, part: tuple, progress: Progress,
               container: dict[str, Any]) -> None:
        path, sha, size, examples = part
        with self.cloud.data_lock():  # a concurrent prune cannot remove the blob we reuse
            uri, stored, copied = self.cloud.upload(workspace, Path(path), sha)
            self.cloud.register_data_version(
                workspace, name, sha, container=container,
                properties={"dataUri": uri, "localPath": str(stored), "sha256": sha, "size": size,
                            "examples": examples})
        progress(f"uploaded {name} ({size:,} bytes, {examples:,} examples)" if copied
                 else f"{name}: content already in the data store, nothing uploaded")

    def _source(self, target: Target, which: str) -> Path:
        """The file to upload; datasets store paths relative to the manifest's root."""
        written = target.attributes["path"] if which == "path" else target.attributes["validation"]["path"]
        path = self.backend.root / written  # an absolute `written` stays as it is
        if not path.is_file():
            raise BackendError("FileNotFound", f"{path} does not exist any more",
                               hint="restore the file or run `foundryctl plan` again")
        return path

    def _prune(self, container_id: str, owner: str | None = None, everything: bool = False) -> None:
        """Delete the versions nothing uses any more, except the latest (a job's or model's
        stay). `owner`: only touch a container this dataset made."""
        container = self.cloud.get(container_id)
        if container is None:
            return
        if owner is not None and container.properties.get("foundryctl", {}).get("owner") != owner:
            return
        latest = None if everything else container.properties.get("latestVersion")
        for version in self.cloud.data_versions(container_id):
            if version.name != latest and not self.cloud.referenced_by(version.id):
                self.cloud.delete_data_version(version.id)

    def delete(self, target: Target, progress: Progress) -> None:
        workspace = self._workspace(target.attributes)
        if self.cloud.get(workspace) is None:
            return  # the project is gone, and its data with it
        self.backend.authorize(DELETE_ACTION, workspace)
        container_id = arm.data_id(workspace, target.name)
        containers = [container_id]
        validation = self.cloud.get(self._validation_container(container_id))
        if validation is not None and validation.properties.get("foundryctl", {}).get("owner") == target.name:
            containers.append(validation.id)
        versions = [v for c in containers for v in self.cloud.data_versions(c)]
        for version in versions:  # check everything first: refuse before deleting anything
            users = self.cloud.referenced_by(version.id)
            if users:
                raise BackendError("Conflict", f"data asset {version.parent_id and arm.last_segment(version.parent_id)}"
                                   f":{version.name[:12]}... is used by {', '.join(users)}",
                                   hint="delete the jobs and models that use it first (a plan that "
                                        "removes them orders this for you)")
        for version in versions:
            self.cloud.delete_data_version(version.id)


def _asset_outputs(version: ArmResource) -> dict[str, Any]:
    props = version.properties
    return {"id": version.id, "version": version.name, "uri": props.get("dataUri"),
            "local_path": props.get("localPath"), "sha256": props.get("sha256"),
            "size": props.get("size"), "examples": props.get("examples")}
