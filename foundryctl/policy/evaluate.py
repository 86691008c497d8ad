"""Evaluating policies: offline over the manifest (validate), and over a plan (plan, apply).

At validate every built-in rule but `max_cost` runs over the manifest's resources, and a
custom rule is only checked to exist (its function is found without running any code). Over
a plan, rules see every resource the plan keeps or creates (no-ops included: a mandatory rule
holds for what exists, not only for what changes), `max_cost` sees the cost estimate, and
custom rules see the whole plan, deletions included.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from foundryctl.errors import Diagnostic, ManifestError, PlanError
from foundryctl.policy.builtin import (
    RESOURCE_RULES,
    ResourceRule,
    Subject,
    check_max_cost,
    max_cost_description,
)
from foundryctl.policy.config import CustomRule, PolicySet, load_policies
from foundryctl.policy.custom import (
    check_declared,
    load_function,
    manifest_view,
    plan_view,
    violations_of,
)
from foundryctl.policy.model import MANDATORY, PolicyResult, Violation, mandatory_failures

if TYPE_CHECKING:
    from foundryctl.cost.model import CostEstimate
    from foundryctl.manifest.model import Manifest
    from foundryctl.plan.model import Plan

NEEDS_PLAN = "evaluated at plan time"


class PolicyError(PlanError):
    """Mandatory policies are violated: plan and apply fail, naming each rule and resource."""

    def __init__(self, results: list[PolicyResult]):
        failures = mandatory_failures(results)
        named = sorted({f"{r.rule}" + (f" ({v.address})" if v.address else "")
                        for r in failures for v in r.violations})
        count = sum(len(r.violations) for r in failures)
        super().__init__(f"{count} mandatory policy violation(s): {', '.join(named)}",
                         diagnostics=[d for r in failures for d in r.diagnostics()],
                         hint="change the manifest to comply, or make the rule advisory")
        self.results = results


def offline_diagnostics(manifest: Manifest, policy_files: Sequence[str | os.PathLike] = ()
                        ) -> list[Diagnostic]:
    """What validate reports: problems in the `policies:`/`prices:` blocks and policy files,
    and violations of the rules that can be checked offline."""
    from foundryctl.cost.prices import load_price_book

    _, price_problems = load_price_book(manifest)
    sets, problems = load_policies(manifest, policy_files)
    results = evaluate_manifest(manifest, sets)
    return price_problems + problems + [d for r in results for d in r.diagnostics()]


def evaluate_manifest(manifest: Manifest, sets: list[PolicySet]) -> list[PolicyResult]:
    subjects = [Subject(d.address, d.kind.name, d.kind.attributes(d.spec), d.spec.protect, d)
                for d in manifest.resources.values()]
    results = []
    for policy in sets:
        results.extend(_resource_results(policy, subjects))
        config = policy.config
        if config.max_cost is not None:
            results.append(PolicyResult("max_cost", _enforcement(config.max_cost.enforcement, policy),
                                        policy.source, max_cost_description(config.max_cost),
                                        skipped=NEEDS_PLAN))
        for index, rule in enumerate(config.custom):
            result = _custom_result(policy, rule)
            problem = check_declared(rule.module, rule.function, policy.directory)
            if problem:
                result.violations.append(Violation(problem, None, policy.block.position(
                    ("custom", index, "module"))))
            else:
                result.skipped = NEEDS_PLAN
            results.append(result)
    return results


def evaluate_plan(plan: Plan, manifest: Manifest, policy_files: Sequence[str | os.PathLike] = (),
                  cost: CostEstimate | None = None) -> list[PolicyResult]:
    """Every rule over the plan. Problems in the policy declarations raise ManifestError."""
    from foundryctl.plan.model import Mode

    if plan.mode is Mode.REFRESH_ONLY:
        return []  # it only records what exists; there is nothing to allow or refuse
    sets, problems = load_policies(manifest, policy_files)
    if any(d.is_error for d in problems):
        raise ManifestError(problems)
    if not sets:
        return []
    cost = cost if cost is not None else plan.cost
    if cost is None and any(s.config.max_cost is not None or s.config.custom for s in sets):
        from foundryctl.cost import estimate_cost

        cost = estimate_cost(plan, manifest)  # a plan made without Stack.plan has none yet
    subjects = [Subject(c.address, c.kind, c.after, c.protect, manifest.resources.get(c.address))
                for c in plan.changes if c.after is not None]
    results = []
    views = None
    for policy in sets:
        results.extend(_resource_results(policy, subjects))
        config = policy.config
        if config.max_cost is not None:
            result = PolicyResult("max_cost", _enforcement(config.max_cost.enforcement, policy),
                                  policy.source, max_cost_description(config.max_cost), checked=1)
            result.violations = check_max_cost(config.max_cost, cost,
                                               trust_manifest_prices=not policy.from_policy_file) \
                if cost is not None else []
            results.append(result)
        for index, rule in enumerate(config.custom):
            if views is None:
                views = (plan_view(plan, cost), manifest_view(manifest))
            result = _custom_result(policy, rule)
            result.checked = 1
            where = policy.block.position(("custom", index, "function"))
            try:
                function = load_function(rule.module, rule.function, policy.directory)
                result.violations = violations_of(function(*views))
            except Exception as exc:  # a broken rule must not pass silently
                result.violations = [Violation(f"the rule failed: {type(exc).__name__}: {exc}", None, where)]
            results.append(result)
    return results


def enforce(results: list[PolicyResult]) -> None:
    """Raise PolicyError when a mandatory rule is violated."""
    if mandatory_failures(results):
        raise PolicyError(results)


def _resource_results(policy: PolicySet, subjects: list[Subject]) -> list[PolicyResult]:
    results = []
    config = policy.config
    for name, rule_class in RESOURCE_RULES.items():
        settings = getattr(config, name)
        if settings is None:
            continue
        rule: ResourceRule = rule_class(settings)
        result = PolicyResult(name, _enforcement(settings.enforcement, policy), policy.source,
                              rule.description())
        for subject in subjects:
            if subject.kind in rule.kinds:
                result.checked += 1
                found = rule.check(subject)
                if found is not None:
                    result.violations.append(found)
        results.append(result)
    return results


def _custom_result(policy: PolicySet, rule: CustomRule) -> PolicyResult:
    return PolicyResult(f"custom:{rule.function}", _enforcement(rule.enforcement, policy), policy.source,
                        rule.description or f"{rule.function} in {rule.module}")


def _enforcement(value: str | None, policy: PolicySet) -> str:
    return value or policy.config.enforcement or MANDATORY
