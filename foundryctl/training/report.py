"""A self-contained HTML training report: loss curves (inline SVG), the final metrics, the
configuration. No plotting library, no external assets: the file opens anywhere."""

from __future__ import annotations

import html
import json
from typing import Any

from foundryctl.training.jobdir import JobDir

WIDTH, HEIGHT, PAD = 720, 300, 48


def _polyline(points: list[tuple[float, float]], x_max: float, y_min: float, y_max: float,
              colour: str, dots: bool = False) -> str:
    if not points:
        return ""
    span = (y_max - y_min) or 1.0

    def xy(x: float, y: float) -> tuple[float, float]:
        return (PAD + (WIDTH - 2 * PAD) * x / (x_max or 1),
                HEIGHT - PAD - (HEIGHT - 2 * PAD) * (y - y_min) / span)

    coords = [xy(x, y) for x, y in points]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    out = f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
    if dots:
        out += "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>' for x, y in coords)
    return out


def loss_chart(steps: list[dict[str, Any]], evals: list[dict[str, Any]]) -> str:
    train = [(r["step"], r["train_loss"]) for r in steps if r.get("train_loss") is not None]
    valid = [(r["step"], r["valid_loss"]) for r in evals if r.get("valid_loss") is not None]
    values = [y for _, y in train + valid]
    if not values:
        return "<p>No metrics recorded.</p>"
    x_max = max(x for x, _ in train + valid)
    y_min, y_max = min(values), max(values)
    axis = (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
            f'<text x="{PAD}" y="{PAD - 8}" font-size="12">{y_max:.3f}</text>'
            f'<text x="{PAD}" y="{HEIGHT - PAD + 16}" font-size="12">{y_min:.3f} (step 0)</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 16}" font-size="12" text-anchor="end">step {x_max:g}</text>')
    legend = ('<text x="{0}" y="20" font-size="12" fill="#1f77b4">training loss</text>'
              '<text x="{1}" y="20" font-size="12" fill="#d62728">validation loss</text>').format(
        WIDTH - 260, WIDTH - 140)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-label="loss curves">{axis}{legend}'
            f"{_polyline(train, x_max, y_min, y_max, '#1f77b4')}"
            f"{_polyline(valid, x_max, y_min, y_max, '#d62728', dots=True)}</svg>")


def write_report(job: JobDir) -> None:
    steps = job.read_metrics("step")
    evals = job.read_metrics("eval") + job.read_metrics("epoch")
    evals.sort(key=lambda r: r["step"])
    config = json.loads(job.config.read_text()) if job.config.exists() else {}
    rows = "".join(
        f"<tr><td>{r['epoch']}</td><td>{r['step']}</td><td>{_fmt(r.get('train_loss'))}</td>"
        f"<td>{_fmt(r.get('valid_loss'))}</td><td>{_fmt(r.get('valid_perplexity'))}</td>"
        f"<td>{_fmt(r.get('valid_mean_token_accuracy'))}</td></tr>" for r in evals)
    speed = [r["tokens_per_second"] for r in steps if r.get("tokens_per_second")]
    body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(config.get('output_model', 'training'))} - training report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:800px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>{html.escape(config.get('output_model', ''))}</h1>
<p>Base model {html.escape(str(config.get('base_model')))}; {len(steps)} optimizer steps;
median {(sorted(speed)[len(speed) // 2] if speed else 0):,.0f} tokens/s.</p>
{loss_chart(steps, evals)}
<h2>Evaluations</h2><table><tr><th>epoch</th><th>step</th><th>train loss</th><th>validation loss</th>
<th>perplexity</th><th>token accuracy</th></tr>{rows}</table>
{samples_section(job)}
<h2>Configuration</h2><pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>
</body></html>
"""
    job.report.write_text(body, encoding="utf-8")


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
