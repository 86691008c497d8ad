"""A plan in Terraform's idiom: `+`, `~`, `-/+`, `-`, before -> after, forces replacement.

Pure formatting: everything shown was decided by the planner. Produces a rich Text, so the
CLI decides about colour (none when piped or with NO_COLOR).
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from foundryctl.cost.model import UNKNOWN, CostEstimate, Price
from foundryctl.plan.model import (
    Action,
    AttributeChange,
    Drift,
    Mode,
    Plan,
    ResourceChange,
)
from foundryctl.policy.model import PolicyResult

_SYMBOL = {Action.CREATE: ("+", "green"), Action.UPDATE: ("~", "yellow"),
           Action.REPLACE: ("-/+", "red"), Action.DELETE: ("-", "red")}
_HEADLINE = {Action.CREATE: "will be created", Action.UPDATE: "will be updated in place",
             Action.REPLACE: "must be replaced", Action.DELETE: "will be destroyed"}


def value_text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)


def render_plan(plan: Plan) -> Text:
    plan = plan.redacted()  # sensitive values print as (sensitive value)
    out = Text()
    _render_changes(out, plan)
    if plan.cost is not None and plan.cost.lines:
        _cost_section(out, plan.cost)
    if plan.policy_results:
        _policy_section(out, plan.policy_results)
    return out


def _render_changes(out: Text, plan: Plan) -> None:
    if plan.drift:
        _drift_section(out, plan.drift)
    for move in plan.moves:
        out.append(f"  # {move.from_address} has moved to {move.to_address}\n", style="bold")
    if plan.moves:
        out.append("\n")
    if plan.repairs and plan.mode is not Mode.REFRESH_ONLY:
        interrupted = [r for r in plan.repairs if r.reason.startswith("interrupted")]
        if interrupted:
            out.append("State repairs from an interrupted apply:\n", style="bold")
            for repair in interrupted:
                out.append(f"  {repair.address}: {repair.reason}\n")
            out.append("\n")
    if plan.mode is Mode.REFRESH_ONLY:
        if plan.drift or plan.repairs:
            out.append("Applying this plan records these changes in state; it changes nothing in "
                       "the backend.\n", style="bold")
        else:
            out.append("No changes. State matches what exists.\n", style="bold green")
        return
    pending = plan.pending
    if not pending:
        if plan.moves:
            out.append(f"Plan: 0 to add, 0 to change, 0 to destroy; {len(plan.moves)} to move "
                       "in state.\n", style="bold")
            return
        out.append("No changes. ", style="bold green")
        out.append("The backend matches the manifest.\n" if plan.mode is Mode.NORMAL
                   else "Nothing to destroy.\n")
        return
    out.append("foundryctl will perform the following actions:\n\n", style="bold")
    for change in pending:
        _change(out, change, plan)
    add, change_count, destroy = plan.summary
    moved = f"; {len(plan.moves)} to move in state" if plan.moves else ""
    out.append(f"Plan: {add} to add, {change_count} to change, {destroy} to destroy{moved}.\n",
               style="bold")


def _drift_section(out: Text, drift: list[Drift]) -> None:
    out.append("Note: objects have changed outside of foundryctl\n\n", style="bold")
    out.append("foundryctl detected these changes made outside of foundryctl since the last apply:\n\n")
    for item in drift:
        if item.action is Action.DELETE:
            out.append(f"  # {item.address} has been deleted\n", style="bold")
            out.append("  - ", style="red")
            out.append(f"{item.address}\n\n")
            continue
        out.append(f"  # {item.address} has changed\n", style="bold")
        out.append("  ~ ", style="yellow")
        out.append(f"{item.address}\n")
        _attribute_changes(out, item.attribute_changes)
        out.append("\n")
    out.append("Unless the manifest was changed to match, the plan below reverts them.\n\n", style="dim")


def _change(out: Text, change: ResourceChange, plan: Plan) -> None:
    symbol, colour = _SYMBOL[change.action]
    headline = _HEADLINE[change.action]
    if change.state_only:
        headline = "will be updated in foundryctl's state only"
    reasons = ", ".join(change.reasons)
    out.append(f"  # {change.address} {headline}", style="bold")
    out.append(f" ({reasons})\n" if reasons else "\n", style="dim" if reasons else None)
    from foundryctl.plan.render_markdown import state_loss  # it imports this module

    lost = state_loss(change, plan)
    if lost:  # the same warning as the Markdown plan's, where the change is read
        out.append(f"  # Warning: {lost.replace('`', '')}\n", style="bold red")
    out.append(f"{symbol:>3} ", style=colour)
    out.append(change.address)
    if change.backend_id and change.action is not Action.CREATE:
        out.append(f"  [id={change.backend_id}]", style="dim")
    out.append("\n")
    if change.action is Action.CREATE:
        _attributes(out, change.after or {}, "+", "green")
    elif change.action is Action.DELETE:
        pass  # the address says it all; `state show` has the details
    else:
        _attribute_changes(out, change.attribute_changes)
    out.append("\n")


def _attributes(out: Text, attributes: dict[str, Any], symbol: str, colour: str) -> None:
    shown = {k: v for k, v in attributes.items() if v is not None}
    width = max((len(k) for k in shown), default=0)
    for key, value in shown.items():
        out.append(f"      {symbol} ", style=colour)
        out.append(f"{key:<{width}} = {value_text(value)}\n")


def _attribute_changes(out: Text, changes: list[AttributeChange]) -> None:
    width = max((len(c.dotted) for c in changes), default=0)
    for c in changes:
        if c.kind == "add":
            out.append("      + ", style="green")
            out.append(f"{c.dotted:<{width}} = {value_text(c.after)}")
        elif c.kind == "remove":
            out.append("      - ", style="red")
            out.append(f"{c.dotted:<{width}} = {value_text(c.before)}")
        else:
            out.append("      ~ ", style="yellow")
            out.append(f"{c.dotted:<{width}} = {value_text(c.before)} -> {value_text(c.after)}")
        if c.forces_replacement:
            out.append("  # forces replacement", style="red")
        out.append("\n")


def _cost_section(out: Text, cost: CostEstimate) -> None:
    out.append("\nCost estimate:\n", style="bold")
    width = max(len(line.address) for line in cost.lines)
    for line in cost.lines:
        out.append(f"  {line.address:<{width}}  {line.item:<8}  ")
        if line.status == UNKNOWN:
            out.append("unknown", style="yellow")
            out.append(f": {line.detail}" if line.detail != "unknown per hour" else " per hour")
        else:
            out.append(line.detail)
        notes = [n for n in (line.note,) if n]
        if line.price is not None:
            notes.append(price_source(line.price))
        if notes:
            out.append(f"  ({'; '.join(notes)})", style="dim")
        out.append("\n")
    out.append(f"  Total: {cost.total_text()}\n", style="bold")


def price_source(price: Price) -> str:
    """'price: catalog, https://..., as of 2026-11'."""
    dated = f", as of {price.as_of}" if price.as_of else ""
    return f"price: {price.origin}, {price.source}{dated}"


_STATUS = {"pass": ("pass", "green"), "warn": ("WARN", "yellow"), "fail": ("FAIL", "red"),
           "skipped": ("skip", "dim")}


def _policy_section(out: Text, results: list[PolicyResult]) -> None:
    failed = sum(1 for r in results if r.status == "fail")
    warned = sum(1 for r in results if r.status == "warn")
    passed = sum(1 for r in results if r.status == "pass")
    out.append("\nPolicies: ", style="bold")
    out.append(f"{passed} passed, {warned} advisory warning(s), {failed} mandatory failure(s)\n",
               style="bold red" if failed else "bold yellow" if warned else "bold green")
    for result in results:
        label, colour = _STATUS[result.status]
        out.append(f"  [{label}] ", style=colour)
        out.append(f"{result.rule} ({result.enforcement}): {result.description}")
        out.append(f"  [{result.source}]" if result.skipped is None else f"  ({result.skipped})", style="dim")
        out.append("\n")
        for violation in result.violations:
            who = f"{violation.address}: " if violation.address else ""
            where = f"  ({violation.position})" if violation.position else ""
            out.append(f"      - {who}{violation.message}")
            out.append(f"{where}\n", style="dim")
