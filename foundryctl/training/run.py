"""The detached job process: `python -m foundryctl.training.run JOB_DIR`.

It reads config.json, trains (resuming from the last checkpoint if there is one), and keeps
status.json current: Running with progress, then Completed, Failed (with the error) or
Canceled (SIGTERM). Its output goes to train.log.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from foundryctl.training.config import TrainingConfig
from foundryctl.training.jobdir import CANCELED, COMPLETED, FAILED, JobDir, process_start_time


def main(argv: list[str]) -> int:
    job = JobDir(Path(argv[0]))
    config = TrainingConfig.load(job.config)

    def log(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)

    from foundryctl.training.loop import Canceled, Trainer, install_signal_handlers

    job.write_status(state="Running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                     started_at=time.time(), error=None)
    trainer = Trainer(config, job, log)
    install_signal_handlers(trainer)
    try:
        result = trainer.run()
    except Canceled:
        log("canceled; the last checkpoint is kept")
        job.write_status(state=CANCELED)
        return 0
    except Exception as exc:
        traceback.print_exc()
        job.write_status(state=FAILED, error=f"{type(exc).__name__}: {exc}")
        return 1
    try:
        from foundryctl.training.report import write_report

        write_report(job)
    except Exception:  # the report is a convenience; the model is what matters
        traceback.print_exc()
    job.write_status(state=COMPLETED, finished_at=time.time(), **result)
    log(f"completed: {result['steps']} steps, {result['tokens']:,} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
