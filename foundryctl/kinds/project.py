"""Project: an Azure AI Foundry project inside a hub, where data, jobs and models live."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from foundryctl.kinds.base import Kind, Ref, Spec
from foundryctl.kinds.hub import WORKSPACE_NAME, OnSoftDeleted, Tags

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl


class ProjectSpec(Spec):
    kind: Literal["Project"]
    name: Annotated[str, WORKSPACE_NAME, Field(description="Workspace name (3-33 characters).")]
    hub: Annotated[str, Ref("Hub", containment=True), Field(description="Name of the Hub it belongs to.")]
    display_name: str | None = Field(None, description="Friendly name shown in the portal.")
    description: str = ""
    tags: Tags
    on_soft_deleted: OnSoftDeleted = None


def inside_project(project: str, manifest: Manifest) -> list[str]:
    """The scope chain of something inside `project`: its hub (when declared), then it."""
    decl = manifest.resources.get(f"Project.{project}")
    return ([f"Hub.{decl.spec.hub}"] if decl else []) + [f"Project.{project}"]  # type: ignore[attr-defined]


def project_location(project: str, manifest: Manifest) -> str | None:
    """The region of `project` (its hub's location), when the manifest declares both."""
    decl = manifest.resources.get(f"Project.{project}")
    hub = manifest.resources.get(f"Hub.{decl.spec.hub}") if decl else None  # type: ignore[attr-defined]
    return hub.spec.location if hub else None  # type: ignore[attr-defined]


class Project(Kind):
    name = "Project"
    spec = ProjectSpec
    summary = "An Azure AI Foundry project in a hub; its location follows the hub."
    force_new = frozenset({"hub"})

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        return [f"Hub.{decl.spec.hub}"]  # type: ignore[attr-defined]
