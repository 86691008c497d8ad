"""The training report's charts, read as a person would: ticked axes with round values, a
dashed marker at each epoch's end, a learning-rate curve, and when the run ran and for how
long. Built from a job directory written by hand, so no training is needed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from xml.etree import ElementTree

from foundryctl.training.jobdir import JobDir
from foundryctl.training.report import nice_ticks, write_report

SVG = "{http://www.w3.org/2000/svg}"


def _job(tmp_path: Path) -> JobDir:
    job = JobDir(tmp_path / "job")
    job.path.mkdir()
    job.config.write_text(json.dumps({"output_model": "xbox-agent", "base_model": "SmolLM2-135M-Instruct"}))
    rows = [{"type": "eval", "step": 0, "epoch": 0, "valid_loss": 2.9}]
    for step in range(1, 19):
        lr = 1e-3 * min(step / 2, 1) * (1 - step / 19)
        rows.append({"type": "step", "step": step, "epoch": step / 6, "train_loss": 3.0 - step * 0.06,
                     "learning_rate": lr, "tokens_per_second": 1200.0})
        if step % 6 == 0:
            rows.append({"type": "epoch", "step": step, "epoch": step // 6, "train_loss": 3.0 - step * 0.05,
                         "valid_loss": 2.9 - step * 0.04})
    job.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    started = time.time() - 221
    job.write_status(state="Running", started_at=started)
    return job


def _charts(report: str) -> dict[str, ElementTree.Element]:
    charts = [ElementTree.fromstring(svg) for svg in re.findall(r"<svg.*?</svg>", report, re.S)]
    return {chart.get("aria-label"): chart for chart in charts}


def test_the_report_has_loss_and_learning_rate_charts_with_epoch_markers(tmp_path: Path) -> None:
    job = _job(tmp_path)
    write_report(job)
    report = job.report.read_text()
    charts = _charts(report)
    assert set(charts) >= {"Loss", "Learning rate"}
    for chart in charts.values():
        epochs = [e for e in chart.iter(f"{SVG}line") if e.get("class") == "epoch"]
        assert [float(e.get("x1")) for e in epochs] == sorted(float(e.get("x1")) for e in epochs)
        assert len(epochs) == 3
        labels = [t.text for t in chart.iter(f"{SVG}text")]
        assert {"epoch 1", "epoch 2", "epoch 3", "optimizer step"} <= set(labels)
        assert len(list(chart.iter(f"{SVG}polyline"))) >= 1

    loss_ticks = [t.text for t in charts["Loss"].iter(f"{SVG}text") if t.get("class") == "ytick"]
    assert loss_ticks == ["1.5", "2.0", "2.5", "3.0"]  # the values run from 1.92 to 3.0
    lr_ticks = [t.text for t in charts["Learning rate"].iter(f"{SVG}text") if t.get("class") == "ytick"]
    assert lr_ticks[0] == "0.0e+00" and all(re.fullmatch(r"\d\.\de[-+]\d\d", t) for t in lr_ticks)
    x_ticks = [t.text for t in charts["Loss"].iter(f"{SVG}text") if t.get("class") == "xtick"]
    assert x_ticks[0] == "0" and all(int(t) <= 18 for t in x_ticks)

    assert re.search(r"Run \d{4}-\d\d-\d\d \d\d:\d\d UTC, 3 min 4[01] s\. Base model SmolLM2-135M-Instruct", report)


def test_a_finished_run_reports_its_recorded_duration(tmp_path: Path) -> None:
    job = _job(tmp_path)
    started = job.read_status()["started_at"]
    job.write_status(finished_at=started + 3725)
    write_report(job)
    assert ", 1 h 2 min. " in job.report.read_text()


def test_a_job_without_metrics_says_so(tmp_path: Path) -> None:
    job = JobDir(tmp_path / "empty")
    job.path.mkdir()
    write_report(job)
    report = job.report.read_text()
    assert "No loss recorded." in report and "No learning rate recorded." in report
    assert "Run " not in report


def test_ticks_are_round_and_cover_the_values() -> None:
    assert nice_ticks(1.83, 2.91) == [1.5, 2.0, 2.5, 3.0]
    assert nice_ticks(0, 37, 6) == [0, 10, 20, 30, 40]
    ticks = nice_ticks(2.0, 2.0)  # a flat curve still gets an axis
    assert ticks[0] <= 2.0 <= ticks[-1] and len(ticks) >= 2
