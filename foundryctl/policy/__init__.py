"""Policies: rules over the manifest and the plan, advisory (a warning) or mandatory (fails
plan and apply). Built-in rules are data; custom rules are Python functions over a read-only
view of the plan. See docs/policies.md.
"""

from foundryctl.policy.config import PoliciesBlock, PolicySet, load_policies
from foundryctl.policy.custom import ChangeView, ManifestView, PlanView, ResourceView
from foundryctl.policy.evaluate import (
    PolicyError,
    enforce,
    evaluate_manifest,
    evaluate_plan,
    offline_diagnostics,
)
from foundryctl.policy.model import ADVISORY, MANDATORY, PolicyResult, Violation, mandatory_failures

__all__ = ["ADVISORY", "MANDATORY", "ChangeView", "ManifestView", "PlanView", "PoliciesBlock",
           "PolicyError", "PolicyResult", "PolicySet", "ResourceView", "Violation", "enforce",
           "evaluate_manifest", "evaluate_plan", "load_policies", "mandatory_failures",
           "offline_diagnostics"]
