"""A plan as a pull-request comment (GitHub-flavoured Markdown): the summary, a table of
changes, each resource's diff in a collapsible section, the cost, the policy results, and a
warning about replacements and deletions that lose state.

Pure formatting, like render_text: everything shown was decided by the planner.
"""

from __future__ import annotations

import html
import re
from typing import Any

from foundryctl.cost.model import UNKNOWN, CostEstimate, Price
from foundryctl.plan.model import Action, AttributeChange, Mode, Plan, ResourceChange
from foundryctl.plan.render_text import value_text
from foundryctl.policy.model import PolicyResult

_SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "-/+", Action.DELETE: "-"}
_HEADLINE = {Action.CREATE: "will be created", Action.UPDATE: "will be updated in place",
             Action.REPLACE: "must be replaced", Action.DELETE: "will be destroyed"}
_STATUS = {"pass": "✅", "warn": "⚠️", "fail": "❌", "skipped": "⏭️"}


# GitHub refuses comments over 65,536 characters; leave room for a bot's own header.
COMMENT_LIMIT = 60_000


def render_markdown(plan: Plan, *, limit: int = COMMENT_LIMIT) -> str:
    """The plan as a pull-request comment. Over `limit` characters, the per-resource diffs are
    left out first, then the summary table is cut, so the comment can always be posted."""
    plan = plan.redacted()  # sensitive values print as (sensitive value)
    text = _render(plan, diffs=True, rows=None)
    if len(text) <= limit:
        return text
    text = _render(plan, diffs=False, rows=None)
    rows = len(plan.pending)
    while len(text) > limit and rows > 0:
        rows //= 2
        text = _render(plan, diffs=False, rows=rows)
    return text


def _render(plan: Plan, *, diffs: bool, rows: int | None) -> str:
    lines: list[str] = []
    add, change, destroy = plan.summary
    title = {Mode.NORMAL: "plan", Mode.DESTROY: "destroy plan", Mode.REFRESH_ONLY: "refresh-only plan"}
    if plan.mode is Mode.REFRESH_ONLY:
        headline = f"{len(plan.drift)} change(s) made outside foundryctl to record"
    elif plan.pending or plan.moves:
        headline = f"{add} to add, {change} to change, {destroy} to destroy"
        if plan.moves:
            headline += f", {len(plan.moves)} to move in state"
    else:
        headline = "no changes"
    lines.append(f"## foundryctl {title[plan.mode]}: {headline}")
    lines.append("")
    meta = [f"backend `{plan.backend.get('type', '?')}`", f"state serial {plan.serial}"]
    if plan.targets:
        meta.append("targets " + ", ".join(f"`{t}`" for t in plan.targets))
    if plan.foundryctl_version:
        meta.append(f"foundryctl {plan.foundryctl_version}")
    lines.append("<sub>" + " · ".join(meta) + "</sub>")
    lines.append("")
    failures = [r for r in plan.policy_results if r.status == "fail"]
    if failures:
        lines.append("> [!CAUTION]")
        lines.append(f"> **This plan violates {len(failures)} mandatory polic"
                     f"{'y' if len(failures) == 1 else 'ies'} and cannot be applied** "
                     "(see [Policies](#policies)).")
        lines.append("")
    losses = [(c, why) for c in plan.pending if (why := state_loss(c, plan))]
    if losses:
        lines.append("### ⚠️ Replacements and deletions that lose state")
        lines.append("")
        for change_, why in losses:
            verb = "replaced" if change_.action is Action.REPLACE else "destroyed"
            lines.append(f"- `{change_.address}` is {verb}: {why}")
        lines.append("")
    if plan.warnings:
        lines.append("### Warnings")
        lines.append("")
        for warning in plan.warnings:
            who = f"`{warning.address}`: " if warning.address else ""
            lines.append(f"- {who}{_inline(warning.message)}")
        lines.append("")
    if plan.drift:
        _drift(lines, plan)
    if plan.pending or plan.moves:
        _summary_table(lines, plan, rows)
        if diffs:
            _diffs(lines, plan)
        else:
            lines.append("> [!NOTE]")
            lines.append("> The per-resource changes are left out to keep this comment under GitHub's size "
                         "limit" + (f"; the table shows {rows} of {len(plan.pending)} changes" if rows is not None
                                    else "") + ". Run `foundryctl plan` (or see the job's log) for all of them.")
            lines.append("")
    elif plan.mode is not Mode.REFRESH_ONLY:
        lines.append("The backend matches the manifest." if plan.mode is Mode.NORMAL
                     else "Nothing to destroy.")
        lines.append("")
    if any(c.gates for c in plan.pending):
        _gates(lines, plan)
    if plan.cost is not None and plan.cost.lines:
        _cost(lines, plan.cost)
    if plan.policy_results:
        _policies(lines, plan.policy_results)
    return "\n".join(lines).rstrip("\n") + "\n"


def state_loss(change: ResourceChange, plan: Plan) -> str | None:
    """What is lost when this resource is replaced or destroyed, or None when nothing is."""
    if change.action not in (Action.REPLACE, Action.DELETE):
        return None
    replace = change.action is Action.REPLACE
    attributes = change.before or change.after or {}
    inside = [a for a in _taken_along(change.address, plan) if not a.startswith("RoleAssignment.")]
    contents = f" ({', '.join(f'`{a}`' for a in inside)})" if inside else ""
    if change.kind == "FineTuneJob":
        model = f"`{attributes.get('output_model')}`" if attributes.get("output_model") else "its model"
        if replace:
            return (f"a new training run; the old fine-tuned model {model}, its checkpoints and "
                    "metrics are deleted once the new one is trained")
        return f"the fine-tuned model {model}, its checkpoints and metrics are deleted"
    if change.kind == "Hub":
        return ("deleting a hub deletes every project in it and everything they hold: data assets, "
                f"fine-tuned models, deployments{contents}")
    if change.kind == "Project":
        return f"deleting a project deletes its data assets, fine-tuned models and deployments{contents}"
    if change.kind == "FoundryAccount":
        return ("deleting a Foundry account deletes its projects and the role assignments at them; Azure "
                f"keeps the account soft-deleted for 48 hours, its name and subdomain taken{contents}")
    if change.kind == "FoundryProject":
        return f"deleting a Foundry project deletes what it holds and the role assignments at it{contents}"
    if change.kind == "Deployment":
        return ("the endpoint is deleted" + ("; the new one has a new URL and new keys" if replace
                                              else "; its URL and keys stop working"))
    if change.kind == "Dataset":
        return "the data asset and every version registered so far are deleted"
    return None


def _taken_along(address: str, plan: Plan) -> list[str]:
    """Resources the plan replaces or destroys because they are inside `address`, transitively."""
    going = [c for c in plan.pending if c.action in (Action.REPLACE, Action.DELETE)]
    found: list[str] = []
    frontier = [address]
    while frontier:
        current = frontier.pop()
        for c in going:
            if c.address not in found and current in c.dependencies + c.prior_dependencies:
                found.append(c.address)
                frontier.append(c.address)
    return found


def _summary_table(lines: list[str], plan: Plan, rows: int | None = None) -> None:
    lines.append("### Summary")
    lines.append("")
    lines.append("| | Action | Resource | Kind | Notes |")
    lines.append("|:-:|---|---|---|---|")
    for move in plan.moves:
        lines.append(f"| `→` | move | `{move.from_address}` → `{move.to_address}` | | state only |")
    for change in plan.pending[:rows]:
        action = change.action.value
        if change.action in (Action.REPLACE, Action.DELETE):
            action = f"**{action}**"
        if change.state_only:
            action += " (state only)"
        notes = _cell("; ".join(change.reasons))
        lines.append(f"| `{_SYMBOL[change.action]}` | {action} | `{change.address}` | {change.kind} "
                     f"| {notes} |")
    lines.append("")


def _diffs(lines: list[str], plan: Plan) -> None:
    if not plan.pending:
        return
    lines.append("### Changes")
    lines.append("")
    for change in plan.pending:
        headline = _HEADLINE[change.action]
        if change.state_only:
            headline = "will be updated in foundryctl's state only"
        code = html.escape(f"{_SYMBOL[change.action]} {change.address}")
        summary = f"<code>{code}</code> {headline}"
        lines.append(f"<details><summary>{summary}</summary>")
        lines.append("")
        if change.reasons:
            lines.append(_inline("; ".join(change.reasons)))
            lines.append("")
        _code(lines, _diff_lines(change))
        lines.append("</details>")
        lines.append("")


def _diff_lines(change: ResourceChange) -> list[str]:
    shown_id = change.backend_id if change.action is not Action.CREATE else None
    out = [f"{_SYMBOL[change.action]} {change.address}" + (f"  [id={shown_id}]" if shown_id else "")]
    if change.action is Action.CREATE:
        out += _attribute_lines(change.after or {}, "+")
    elif change.action is Action.DELETE:
        out += _attribute_lines(change.before or {}, "-")
    else:
        out += _change_lines(change.attribute_changes)
    return out


def _attribute_lines(attributes: dict[str, Any], sign: str) -> list[str]:
    shown = {k: v for k, v in attributes.items() if v is not None}
    width = max((len(k) for k in shown), default=0)
    return [f"{sign}   {key:<{width}} = {value_text(value)}" for key, value in shown.items()]


def _change_lines(changes: list[AttributeChange]) -> list[str]:
    out = []
    width = max((len(c.dotted) for c in changes), default=0)
    for c in changes:
        forces = "  # forces replacement" if c.forces_replacement else ""
        if c.kind != "add":  # the old value; the comment goes on the last line of the pair
            comment = forces if c.kind == "remove" else ""
            out.append(f"-   {c.dotted:<{width}} = {value_text(c.before)}{comment}")
        if c.kind != "remove":
            out.append(f"+   {c.dotted:<{width}} = {value_text(c.after)}{forces}")
    return out


def _drift(lines: list[str], plan: Plan) -> None:
    lines.append("### Changed outside foundryctl")
    lines.append("")
    for item in plan.drift:
        if item.action is Action.DELETE:
            lines.append(f"- `{item.address}` has been deleted")
            continue
        lines.append(f"- <details><summary><code>{html.escape(item.address)}</code> has changed</summary>")
        lines.append("")
        _code(lines, _change_lines(item.attribute_changes), indent="  ")
        lines.append("  </details>")
    lines.append("")
    if plan.mode is not Mode.REFRESH_ONLY:
        lines.append("Unless the manifest was changed to match, the plan reverts them.")
        lines.append("")


def _gates(lines: list[str], plan: Plan) -> None:
    """Each promotion gate: the candidate's metrics against its baselines, condition by condition."""
    lines.append("### Promotion gates")
    lines.append("")
    for change in plan.pending:
        for gate in change.gates:
            head = f"`{change.address}` ← `{gate['evaluation']}`"
            if gate["status"] == "not-run":
                lines.append(f"- {head}: ⏳ not yet run for this model; apply evaluates it and swaps only if "
                             "the gate passes")
                continue
            icon = "✅ passed" if gate["status"] == "passed" else "❌ **failed**: the current model keeps serving"
            lines.append(f"- {head}: {icon}")
            lines.append("")
            baselines = sorted(gate.get("baselines") or {})
            lines.append("  | Metric | Candidate | " + "".join(f"baseline.{b} | " for b in baselines) + "Gate |")
            lines.append("  |---|--:|" + "--:|" * len(baselines) + "---|")
            conditions = gate.get("conditions") or []
            for metric, value in (gate.get("values") or {}).items():
                judged = [c for c in conditions if _condition_metric(c.get("condition", "")) == metric]
                verdict = "<br>".join(("✅ " if c["passed"] else "❌ ") + _cell(c["text"]) for c in judged) or "—"
                row = [f"`{metric}`", _number(value)] + [
                    _number((gate["baselines"].get(b) or {}).get(metric)) for b in baselines]
                lines.append("  | " + " | ".join(row) + f" | {verdict} |")
            lines.append("")


def _condition_metric(text: str) -> str | None:
    from foundryctl.evaluation.gate import parse_condition

    try:
        return parse_condition(text).metric
    except (ValueError, AttributeError):
        return None


def _number(value: Any) -> str:
    return "—" if not isinstance(value, (int, float)) else f"{value:.4g}"


def _cost(lines: list[str], cost: CostEstimate) -> None:
    lines.append("### Cost estimate")
    lines.append("")
    lines.append("| Resource | Item | Estimate | Price source |")
    lines.append("|---|---|---|---|")
    for line in cost.lines:
        if line.status == UNKNOWN:
            estimate = f"**unknown** ({_cell(line.note or line.detail)})"
        else:
            estimate = _cell(line.detail)
            if line.note:
                estimate += f" <br><sub>{_cell(line.note)}</sub>"
        lines.append(f"| `{line.address}` | {line.item} | {estimate} | {_source(line.price)} |")
    lines.append("")
    lines.append(f"**Total: {_inline(cost.total_text())}**")
    lines.append("")


def _source(price: Price | None) -> str:
    if price is None:
        return "—"
    source = price.source
    if re.match(r"^https?://\S+$", source):
        source = f"[{price.origin}]({source})"
    else:
        source = f"{price.origin}: {_cell(source)}"
    return source + (f", as of {_cell(price.as_of)}" if price.as_of else "")


def _policies(lines: list[str], results: list[PolicyResult]) -> None:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("pass", "warn", "fail", "skipped")}
    lines.append("### Policies")
    lines.append("")
    lines.append(f"{_STATUS['pass']} {counts['pass']} passed · {_STATUS['warn']} {counts['warn']} advisory "
                 f"warning(s) · {_STATUS['fail']} {counts['fail']} mandatory failure(s)")
    lines.append("")
    lines.append("| | Rule | Enforcement | Resource | Result |")
    lines.append("|:-:|---|---|---|---|")
    for result in results:
        icon = _STATUS[result.status]
        rule = f"`{result.rule}`"
        if not result.violations:
            text = result.skipped and f"{result.description} ({result.skipped})" or result.description
            lines.append(f"| {icon} | {rule} | {result.enforcement} | — | {_cell(text)} |")
            continue
        for violation in result.violations:
            who = f"`{violation.address}`" if violation.address else "—"
            where = f" <sub>{_cell(str(violation.position))}</sub>" if violation.position else ""
            lines.append(f"| {icon} | {rule} | {result.enforcement} | {who} "
                         f"| {_cell(violation.message)}{where} |")
    lines.append("")


def _code(lines: list[str], body: list[str], indent: str = "") -> None:
    # A fence longer than any run of backticks inside, so a value cannot end the block.
    longest = max((len(run) for text in body for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    lines.append(f"{indent}{fence}diff")
    lines.extend(f"{indent}{text}" for text in body)
    lines.append(f"{indent}{fence}")
    lines.append("")


def _inline(text: str) -> str:
    return html.escape(text, quote=False)


def _cell(text: str) -> str:
    """Text for a table cell: no pipes or newlines to break the row, no raw HTML."""
    return _inline(text).replace("|", "\\|").replace("\n", " ")
