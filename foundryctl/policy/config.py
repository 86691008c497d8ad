"""Policies as data: the manifest's `policies:` block and policy files (`--policy-file`).

    policies:
      enforcement: mandatory              # the default for rules below that do not say
      content_filter: mandatory           # deployments keep content filtering on
      allowed_regions: [eastus2, swedencentral]
      allowed_base_models: {models: ["Phi-3*", Phi-4-mini-instruct], enforcement: advisory}
      max_epochs: 5
      max_cost: {training: 50, hosting_per_hour: 2, currency: USD}
      require_protect: advisory           # deployments must have protect: true
      custom:
        - {module: policies/rules.py, function: no_friday_deploys, enforcement: mandatory}

Each rule has a short form (an enforcement, a list, a number) and a long form (a mapping).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from foundryctl.errors import Diagnostic
from foundryctl.manifest.blocks import Block, file_blocks, manifest_blocks
from foundryctl.manifest.pydantic_errors import validation_diagnostics

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest

Enforcement = Literal["advisory", "mandatory"]
_ENFORCEMENTS = ("advisory", "mandatory")


class RuleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enforcement: Enforcement | None = Field(None, description=(
        "advisory: a warning; mandatory: an error that fails plan and apply. "
        "Default: the block's `enforcement`."))

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, str) and value in _ENFORCEMENTS:
            return {"enforcement": value}
        if value is True:
            return {}
        return cls._shorthand(value)

    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return value


class ContentFilterRule(RuleSettings):
    """Every Deployment keeps `content_filter.enabled: true`."""


class RequireProtectRule(RuleSettings):
    """Every Deployment has `protect: true`."""


class RequireGatesRule(RuleSettings):
    """Every Deployment of a fine-tuned model is promoted by an evaluation gate (`promote_when`)."""


class AllowedRegionsRule(RuleSettings):
    """Hubs (and so their projects, jobs and deployments) are only in these regions."""

    regions: list[str] = Field(min_length=1, description="Azure regions, e.g. eastus2 or 'East US 2'.")

    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"regions": value} if isinstance(value, list) else value

    @field_validator("regions")
    @classmethod
    def _known(cls, regions: list[str]) -> list[str]:
        from foundryctl.kinds.hub import check_region

        return [check_region(r) for r in regions]


class AllowedBaseModelsRule(RuleSettings):
    """FineTuneJobs only fine-tune these base models."""

    models: list[str] = Field(min_length=1, description=(
        "Catalog names, base_model values or glob patterns (Phi-3*), matched without case."))

    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"models": value} if isinstance(value, list) else value


class MaxEpochsRule(RuleSettings):
    """FineTuneJobs train for at most this many epochs."""

    max: int = Field(ge=1, description="The largest hyperparameters.epochs allowed.")

    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"max": value} if isinstance(value, int) and not isinstance(value, bool) else value


class MaxCostRule(RuleSettings):
    """A plan's estimated cost stays under these limits (evaluated at plan time)."""

    training: float | None = Field(None, ge=0, description="Limit on the plan's training cost (once).")
    hosting_per_hour: float | None = Field(None, ge=0, description=(
        "Limit on the hourly hosting cost of the deployments the plan creates."))
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="Currency of the limits.")
    allow_unknown: bool = Field(False, description=(
        "Pass when a price is unknown (by default an unknown cost cannot be shown to be "
        "under the limit, so it violates the rule)."))

    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"training": value}
        return value

    @model_validator(mode="after")
    def _a_limit(self) -> MaxCostRule:
        if self.training is None and self.hosting_per_hour is None:
            raise ValueError("give `training` and/or `hosting_per_hour`")
        return self


class CustomRule(BaseModel):
    """A Python function over the plan (see docs/policies.md for its signature)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    module: str = Field(min_length=1, description=(
        "A .py file (relative to the file declaring the rule) or an importable module name."))
    function: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="The function's name.")
    enforcement: Enforcement | None = None
    description: str = Field("", description="What the rule requires, shown with its results.")


class PoliciesBlock(BaseModel):
    """The manifest's `policies:` block, or a policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enforcement: Enforcement = Field("mandatory", description="Default enforcement of the rules here.")
    content_filter: ContentFilterRule | None = None
    allowed_regions: AllowedRegionsRule | None = None
    allowed_base_models: AllowedBaseModelsRule | None = None
    max_epochs: MaxEpochsRule | None = None
    max_cost: MaxCostRule | None = None
    require_protect: RequireProtectRule | None = None
    require_gates: RequireGatesRule | None = None
    custom: list[CustomRule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _rules_off(cls, value: Any) -> Any:
        # `rule: false` (or null) switches a rule off, e.g. in an environment's policy file.
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if v is not False and v is not None}
        return value


@dataclass
class PolicySet:
    """One block of policies and where it was declared."""

    config: PoliciesBlock
    block: Block
    source: str  # the file that declares it, as shown to the user
    from_policy_file: bool = False  # an organisation's guardrail, not the manifest's own block

    @property
    def directory(self) -> Path:
        return self.block.directory


def load_policies(manifest: Manifest, policy_files: Sequence[str | os.PathLike] = ()
                  ) -> tuple[list[PolicySet], list[Diagnostic]]:
    """The manifest's `policies:` blocks and the policy files, validated."""
    blocks, diagnostics = manifest_blocks(manifest, "policies")
    diagnostics = list(diagnostics)
    all_blocks = list(blocks)
    from_files: set[int] = set()
    for path in policy_files:
        if not Path(path).is_file():
            diagnostics.append(Diagnostic.error(f"policy file not found: {path}", code="io"))
            continue
        # No manifest variables: a change under review must not be able to move its own limits.
        found, problems = file_blocks(path, "policies", {})
        diagnostics.extend(problems)
        all_blocks.extend(found)
        from_files.update(id(b) for b in found)
    sets = []
    for block in all_blocks:
        try:
            config = PoliciesBlock.model_validate(block.value)
        except ValidationError as exc:
            diagnostics.extend(validation_diagnostics(exc, block.value, PoliciesBlock, block.position,
                                                      block.key_position, None))
            continue
        sets.append(PolicySet(config, block, block.file, id(block) in from_files))
    return sets, diagnostics
