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

from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local import arm
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError

WRITE_ACTION = "Microsoft.MachineLearningServices/workspaces/data/versions/write"
DELETE_ACTION = "Microsoft.MachineLearningServices/workspaces/data/versions/delete"
VALIDATION_SUFFIX = "-validation"


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
        if latest is None:
            return None
        managed = latest.properties.get("foundryctl", {})
        attributes = dict(managed.get("attributes", {}))
        validation = self._latest(arm.data_id(arm.workspace_of(container.id) or "",
                                              container.name + VALIDATION_SUFFIX))
        outputs: dict[str, Any] = {
            "id": container.id, "asset": f"{container.name}:{latest.name}",
            "training": _asset_outputs(latest),
            "validation": _asset_outputs(validation) if validation is not None and attributes.get("validation") else None,
            "retained_versions": sorted(v for v in versions if v != latest.name),
            "token_counts": managed.get("token_counts"),
        }
        return Observed(container.id, attributes, outputs)

    def _latest(self, container_id: str) -> ArmResource | None:
        container = self.cloud.get(container_id)
        if container is None:
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
        report = validate_dataset(source, ValidationOptions(
            count_tokens=True, split=(split["split"], split["seed"]) if "split" in split else None))
        if report.sha256 != a.get("version"):
            raise BackendError("ContentMismatch", f"{source} changed since the plan was made",
                               hint="run `foundryctl plan` again")
        if not report.valid:
            raise BackendError("InvalidData", f"{source} has {report.error_count} error(s)",
                               hint=f"see them with: foundryctl data validate {source}")
        token_counts = {"total": report.total_tokens.total, "assistant": report.assistant_tokens.total,
                        "counting": report.token_counting}
        managed = {"attributes": a, "token_counts": token_counts}
        with tempfile.TemporaryDirectory(prefix="foundryctl-split-") as scratch:
            if report.split is not None:
                train, held_out = write_split(source, report, Path(scratch) / "training.jsonl",
                                              Path(scratch) / "validation.jsonl")
                parts = [(target.name, train.path, train.sha256, train.size, train.examples),
                         (target.name + VALIDATION_SUFFIX, held_out.path, held_out.sha256,
                          held_out.size, held_out.examples)]
            else:
                parts = [(target.name, source, report.sha256, report.size, report.examples)]
                if "path" in split:
                    check = validate_dataset(self._source(target, "validation"),
                                             ValidationOptions(count_tokens=False, role="validation"))
                    if check.sha256 != a.get("validation_version"):
                        raise BackendError("ContentMismatch", "the validation file changed since the "
                                           "plan was made", hint="run `foundryctl plan` again")
                    parts.append((target.name + VALIDATION_SUFFIX, self._source(target, "validation"),
                                  check.sha256, check.size, check.examples))
            for name, path, sha, size, examples in parts:
                uri, stored, copied = self.cloud.upload(workspace, Path(path), sha)
                progress(f"uploaded {name} ({size:,} bytes, {examples:,} examples)" if copied
                         else f"{name}: content already in the data store, nothing uploaded")
                self.cloud.register_data_version(
                    workspace, name, sha, description=a.get("description", ""),
                    properties={"dataUri": uri, "localPath": str(stored), "sha256": sha, "size": size,
                                "examples": examples, "foundryctl": managed})
        registered = {name for name, *_ in parts}
        if target.name + VALIDATION_SUFFIX not in registered:
            self._prune(arm.data_id(workspace, target.name + VALIDATION_SUFFIX), keep=None)
        for name, _, sha, *_ in parts:
            self._prune(arm.data_id(workspace, name), keep=sha)
        observed = self._observe(arm.data_id(workspace, target.name))
        assert observed is not None
        return observed

    def _source(self, target: Target, which: str) -> Path:
        """The file to upload; datasets store paths relative to the manifest's root."""
        written = target.attributes["path"] if which == "path" else target.attributes["validation"]["path"]
        path = self.backend.root / written  # an absolute `written` stays as it is
        if not path.is_file():
            raise BackendError("FileNotFound", f"{path} does not exist any more",
                               hint="restore the file or run `foundryctl plan` again")
        return path

    def _prune(self, container_id: str, keep: str | None) -> None:
        """Delete the versions nothing uses any more (a job's or model's stay)."""
        for version in self.cloud.data_versions(container_id):
            if version.name != keep and not self.cloud.referenced_by(version.id):
                self.cloud.delete_data_version(version.id)

    def delete(self, target: Target, progress: Progress) -> None:
        workspace = self._workspace(target.attributes)
        if self.cloud.get(workspace) is None:
            return  # the project is gone, and its data with it
        self.backend.authorize(DELETE_ACTION, workspace)
        for name in (target.name, target.name + VALIDATION_SUFFIX):
            container_id = arm.data_id(workspace, name)
            for version in self.cloud.data_versions(container_id):
                users = self.cloud.referenced_by(version.id)
                if users:
                    raise BackendError("Conflict", f"data asset {name}:{version.name[:12]}... is used by "
                                       f"{', '.join(users)}", hint="delete the jobs and models that use "
                                       "it first (a plan that removes them orders this for you)")
                self.cloud.delete_data_version(version.id)


def _asset_outputs(version: ArmResource) -> dict[str, Any]:
    props = version.properties
    return {"id": version.id, "version": version.name, "uri": props.get("dataUri"),
            "local_path": props.get("localPath"), "sha256": props.get("sha256"),
            "size": props.get("size"), "examples": props.get("examples")}
