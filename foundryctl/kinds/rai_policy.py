"""RaiPolicy: a content-filter policy of a FoundryAccount (`Microsoft.CognitiveServices/
accounts/raiPolicies` at api-version 2025-06-01), which the account's model deployments name
as their `raiPolicyName`.

Fields follow the vendored azure-rest-api-specs (cognitiveservices.json 2025-06-01,
RaiPolicyProperties and RaiPolicyContentFilter; example PutRaiPolicy.json): a base policy, a
mode, and content filters, one per category and source (Prompt or Completion). The four harm
categories (Hate, Sexual, Selfharm, Violence) filter at a severity threshold; the others
(Jailbreak, Indirect Attack, Protected Material Text, Protected Material Code) are on or off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foundryctl.kinds.base import Kind, Ref, Spec, name_rule

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl

HARM_CATEGORIES = ("Hate", "Sexual", "Selfharm", "Violence")
# Filters without a severity, and the one source Azure applies each to (PutRaiPolicy.json:
# Jailbreak on prompts, protected material on completions; Learn's content-filter concepts put
# indirect attacks (document embedded in prompts) on the prompt).
BINARY_SOURCES = {"Jailbreak": "Prompt", "Indirect Attack": "Prompt",
                  "Protected Material Text": "Completion", "Protected Material Code": "Completion"}
Category = Literal["Hate", "Sexual", "Selfharm", "Violence", "Jailbreak", "Indirect Attack",
                   "Protected Material Text", "Protected Material Code"]
# Azure's raiPolicyName: letters, digits, '_', '-' and '.'; foundryctl leaves '.' out (addresses).
POLICY_NAME = name_rule(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
                        "use 1-64 letters, digits, '_' or '-', starting with a letter or digit")


class RaiContentFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Category = Field(description="Hate, Sexual, Selfharm, Violence (with a severity), or "
                                           "Jailbreak, Indirect Attack, Protected Material Text/Code.")
    source: Literal["Prompt", "Completion"] = Field(description="What it filters: the prompt or the completion.")
    severity_threshold: Literal["Low", "Medium", "High"] | None = Field(None, description=(
        "Harm categories: content at this severity and above is filtered (Low filters the most)."))
    blocking: bool = Field(True, description="Block what it catches (false: annotate only).")
    enabled: bool = Field(True, description="Whether the filter runs at all.")

    @model_validator(mode="after")
    def _shape(self) -> RaiContentFilter:
        if self.category in HARM_CATEGORIES and self.severity_threshold is None:
            raise ValueError(f"{self.category} filters at a severity: give severity_threshold (Low, Medium or High)")
        if self.category not in HARM_CATEGORIES:
            if self.severity_threshold is not None:
                raise ValueError(f"{self.category} is on or off: it has no severity_threshold")
            if self.source != BINARY_SOURCES[self.category]:
                raise ValueError(f"{self.category} applies to the {BINARY_SOURCES[self.category].lower()} only "
                                 f"(source: {BINARY_SOURCES[self.category]})")
        return self


class RaiPolicySpec(Spec):
    kind: Literal["RaiPolicy"]
    name: Annotated[str, POLICY_NAME, Field(description="Policy name, unique in its account; deployments name it.")]
    account: Annotated[str, Ref("FoundryAccount", containment=True),
                       Field(description="Name of the FoundryAccount it belongs to.")]
    base_policy: str = Field("Microsoft.DefaultV2", min_length=1, description=(
        "The policy it starts from (Microsoft.DefaultV2, Microsoft.Default)."))
    mode: Literal["Default", "Blocking", "Asynchronous_filter"] = Field("Default", description=(
        "Default or Blocking (filter before the answer streams) or Asynchronous_filter (filter "
        "while it streams; Azure's name for Deferred from 2025-06-01)."))
    content_filters: list[RaiContentFilter] = Field(min_length=1, description="One filter per category and source.")

    @model_validator(mode="after")
    def _once_each(self) -> RaiPolicySpec:
        seen: set[tuple[str, str]] = set()
        for f in self.content_filters:
            key = (f.category, f.source)
            if key in seen:
                raise ValueError(f"content_filters has {f.category} on the {f.source.lower()} twice")
            seen.add(key)
        return self


class RaiPolicy(Kind):
    name = "RaiPolicy"
    spec = RaiPolicySpec
    summary = "A content-filter policy of a FoundryAccount, per category, severity and source."
    force_new = frozenset({"account"})
    adopts_existing = True  # a PUT of Azure's is idempotent: an existing policy is made to match

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        return [f"FoundryAccount.{decl.spec.account}"]  # type: ignore[attr-defined]

    @classmethod
    def attributes(cls, spec: Spec) -> dict[str, Any]:
        attributes = super().attributes(spec)
        # Azure keeps no order: the plan compares them by category and source.
        attributes["content_filters"] = sorted(attributes["content_filters"],
                                               key=lambda f: (f["category"], f["source"]))
        return attributes


def arm_filters(filters: list[dict]) -> list[dict]:
    """The manifest's content_filters in the REST API's shape (RaiPolicyContentFilter)."""
    out = []
    for f in filters:
        item = {"name": f["category"], "source": f["source"], "blocking": f["blocking"], "enabled": f["enabled"]}
        if f.get("severity_threshold"):
            item["severityThreshold"] = f["severity_threshold"]
        out.append(item)
    return out


def manifest_filters(filters: list[dict]) -> list[dict]:
    """RaiPolicyContentFilter items back in the manifest's shape."""
    return [{"category": f.get("name"), "source": f.get("source"),
             "severity_threshold": f.get("severityThreshold"), "blocking": bool(f.get("blocking", False)),
             "enabled": bool(f.get("enabled", False))} for f in filters]
