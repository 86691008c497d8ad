"""A self-contained HTML training report: when the run ran and for how long, loss and
learning-rate curves over steps with epoch markers (inline SVG), the evaluations, sample
answers before and after training, the configuration. No plotting library, no external
assets: the file opens anywhere."""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from foundryctl.training.jobdir import JobDir

WIDTH, HEIGHT = 720, 300
EVALUATIONS_DIR = "evaluations"  # one NAME.json per Evaluation that scored the run
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 32, 44  # room for tick labels and the axis titles


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        high = low + (abs(low) or 1.0) * 0.1
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _tick_label(value: float, ticks: list[float]) -> str:
    spread = max(abs(t) for t in ticks) or 1.0
    if spread < 1e-2:
        return f"{value:.1e}"
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f}"


@dataclass
class Series:
    label: str
    colour: str
    points: list[tuple[float, float]]
    dots: bool = False


def line_chart(title: str, y_title: str, series: list[Series], epoch_ends: list[tuple[int, int]]) -> str:
    """An SVG line chart over optimizer steps: ticked axes, a legend, and a dashed line at the
    end of each epoch (`epoch_ends`: (epoch, step))."""
    values = [y for s in series for _, y in s.points]
    if not values:
        return f"<p>No {html.escape(y_title)} recorded.</p>"
    x_max = max([x for s in series for x, _ in s.points] + [step for _, step in epoch_ends]) or 1
    y_ticks = nice_ticks(min(values), max(values))
    x_ticks = [t for t in nice_ticks(0, x_max, 6) if t <= x_max]
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + plot_w * x / x_max

    def sy(y: float) -> float:
        return TOP + plot_h * (1 - (y - y_low) / ((y_high - y_low) or 1.0))

    parts = [f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for y in y_ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{sy(y):.1f}" x2="{WIDTH - RIGHT}" y2="{sy(y):.1f}" '
                     'stroke="#e4e4e4"/>')
        parts.append(f'<text class="ytick" x="{LEFT - 6}" y="{sy(y) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{_tick_label(y, y_ticks)}</text>')
    for x in x_ticks:
        parts.append(f'<text class="xtick" x="{sx(x):.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
                     f'text-anchor="middle">{x:g}</text>')
    for epoch, step in epoch_ends:
        parts.append(f'<line class="epoch" x1="{sx(step):.1f}" y1="{TOP}" x2="{sx(step):.1f}" '
                     f'y2="{HEIGHT - BOTTOM}" stroke="#999" stroke-dasharray="4 3"/>'
                     f'<text x="{sx(step) - 3:.1f}" y="{TOP + 12}" font-size="10" fill="#666" '
                     f'text-anchor="end">epoch {epoch}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" stroke="#888"/>'
                 f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#888"/>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" font-size="12" '
                 'text-anchor="middle">optimizer step</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2:.0f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">{html.escape(y_title)}</text>')
    legend_x = WIDTH - RIGHT
    for s in reversed(series):
        parts.append(f'<text x="{legend_x}" y="18" font-size="12" fill="{s.colour}" '
                     f'text-anchor="end">{html.escape(s.label)}</text>')
        legend_x -= 8 * len(s.label) + 16
    for s in series:
        coords = [(sx(x), sy(y)) for x, y in s.points]
        if not coords:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="2" points="{path}"/>')
        if s.dots:
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{s.colour}"/>' for x, y in coords)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'aria-label="{html.escape(title)}">{"".join(parts)}</svg>')


def _epoch_ends(evals: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(int(r["epoch"]), int(r["step"])) for r in evals if r.get("type") == "epoch" and r.get("step")]


def loss_chart(steps: list[dict[str, Any]], evals: list[dict[str, Any]]) -> str:
    return line_chart("Loss", "loss", [
        Series("training loss", "#1f77b4", [(r["step"], r["train_loss"]) for r in steps
                                            if r.get("train_loss") is not None]),
        Series("validation loss", "#d62728", [(r["step"], r["valid_loss"]) for r in evals
                                              if r.get("valid_loss") is not None], dots=True),
    ], _epoch_ends(evals))


def learning_rate_chart(steps: list[dict[str, Any]], evals: list[dict[str, Any]]) -> str:
    return line_chart("Learning rate", "learning rate", [
        Series("learning rate", "#2ca02c", [(r["step"], r["learning_rate"]) for r in steps
                                            if r.get("learning_rate") is not None]),
    ], _epoch_ends(evals))


def run_times(job: JobDir) -> str:
    """`Run 2026-12-03 14:02 UTC, 3 min 41 s` from status.json (the report is written as the
    run ends, before its finish time is recorded: now is the end)."""
    status = job.read_status()
    started = status.get("started_at")
    if not isinstance(started, (int, float)):
        return ""
    finished = status.get("finished_at")
    finished = finished if isinstance(finished, (int, float)) and finished >= started else time.time()
    seconds = round(finished - started)
    took = f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds >= 3600 else (
        f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s")
    when = datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Run {when}, {took}. "


def write_report(job: JobDir) -> None:
    steps = job.read_metrics("step")
    evals = job.read_metrics("eval") + job.read_metrics("epoch")
    evals.sort(key=lambda r: r["step"])
    config = json.loads(job.config.read_text()) if job.config.exists() else {}
    classification = config.get("task") == "text_classification"
    # (column title, metric) of the evaluations table, by task
    columns = ([("train loss", "train_loss"), ("validation loss", "valid_loss"),
                ("accuracy", "valid_accuracy"), ("macro-F1", "valid_f1_macro")] if classification else
               [("train loss", "train_loss"), ("validation loss", "valid_loss"),
                ("perplexity", "valid_perplexity"), ("token accuracy", "valid_mean_token_accuracy")])
    header = "".join(f"<th>{title}</th>" for title, _ in columns)
    rows = "".join(
        f"<tr><td>{r['epoch']}</td><td>{r['step']}</td>"
        + "".join(f"<td>{_fmt(r.get(key))}</td>" for _, key in columns) + "</tr>" for r in evals)
    note = ("<p>Step 0 is the untrained classification head; accuracy and macro-F1 are measured on "
            "the validation data.</p>" if classification else "")
    speed = [r.get("tokens_per_second") or r.get("examples_per_second") for r in steps
             if r.get("tokens_per_second") or r.get("examples_per_second")]
    body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(config.get('output_model', 'training'))} - training report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:800px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>{html.escape(config.get('output_model', ''))}</h1>
<p>{run_times(job)}Base model {html.escape(str(config.get('base_model')))}; {len(steps)} optimizer steps;
median {(sorted(speed)[len(speed) // 2] if speed else 0):,.0f} {"examples" if classification else "tokens"}/s.</p>
{loss_chart(steps, evals)}
{learning_rate_chart(steps, evals)}
<h2>Evaluations</h2>{note}<table><tr><th>epoch</th><th>step</th>{header}</tr>{rows}</table>
{samples_section(job)}
{evaluations_section(job)}
<h2>Configuration</h2><pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>
</body></html>
"""
    job.report.write_text(body, encoding="utf-8")


def evaluations_section(job: JobDir) -> str:
    """The Evaluations that scored this run (each written in by the evaluation after it ran):
    every metric beside its baselines, and the gate's conditions."""
    found = []
    for path in sorted((job.path / EVALUATIONS_DIR).glob("*.json")):
        try:
            found.append((path.stem, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    if not found:
        return ""
    parts = ["<h2>Evaluation gates</h2>"]
    for name, result in found:
        gate = result.get("gate") or {}
        verdict = "no gate" if not gate.get("conditions") else ("passed" if gate.get("passed") else "FAILED")
        baselines = sorted(result.get("baselines") or {})
        head = "".join(f"<th>baseline.{html.escape(b)}</th>" for b in baselines)
        rows = "".join(
            f"<tr><td style=\"text-align:left\">{html.escape(metric)}</td><td>{_fmt(value)}</td>"
            + "".join(f"<td>{_fmt((result['baselines'][b] or {}).get(metric))}</td>" for b in baselines) + "</tr>"
            for metric, value in (result.get("values") or {}).items())
        conditions = "".join(f"<li>{'✓' if c.get('passed') else '✗'} {html.escape(str(c.get('text')))}</li>"
                             for c in gate.get("conditions") or [])
        checkpoint = (result.get("target") or {}).get("resolved")
        parts.append(f"<h3>Evaluation.{html.escape(name)}: {verdict}</h3><p>{result.get('examples')} examples"
                     + (f", checkpoint {html.escape(str(checkpoint))}" if checkpoint else "")
                     + f", {html.escape(str(result.get('finished_at')))}.</p>"
                     f"<table><tr><th>metric</th><th>this model</th>{head}</tr>{rows}</table><ul>{conditions}</ul>")
    return "".join(parts)


def samples_section(job: JobDir) -> str:
    """Greedy answers to the first validation prompts, before and after training."""
    from foundryctl.training import samples

    by_prompt: dict[str, dict[str, Any]] = {}
    for row in samples.read(job.samples):  # a resumed run may have answered again: the last counts
        entry = by_prompt.setdefault(row.get("prompt", ""), {"reference": row.get("reference", "")})
        entry[row.get("when", "")] = row.get("answer", "")
    if not by_prompt:
        return ""

    def cell(text: Any) -> str:
        return f'<td style="text-align:left;vertical-align:top">{html.escape(str(text or ""))}</td>'

    rows = "".join(f"<tr>{cell(prompt)}{cell(e['reference'])}{cell(e.get('before'))}{cell(e.get('after'))}</tr>"
                   for prompt, e in by_prompt.items())
    return (f"<h2>Sample generations</h2><p>Greedy, at most {samples.MAX_NEW_TOKENS} new tokens, on "
            "validation prompts.</p><table><tr><th>prompt</th><th>reference</th><th>before training</th>"
            f"<th>after training</th></tr>{rows}</table>")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))
