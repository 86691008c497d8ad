"""The detached job process: `python -m foundryctl.training.run JOB_DIR`.

It reads config.json, trains (resuming from the last checkpoint if there is one), and keeps
status.json current: Running with progress, then Completed, Failed (with the error) or
Canceled (SIGTERM). Its output goes to train.log.

With more than one GPU the handler starts it under torchrun (`python -m
torch.distributed.run --nproc_per_node N -m foundryctl.training.run JOB_DIR`): every process
trains its share, and process 0 alone writes status, metrics, checkpoints and the model. The
pid in status.json is then torchrun's, so a dead launcher reads as an interrupted job.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from foundryctl.training.config import TrainingConfig
from foundryctl.training.jobdir import CANCELED, COMPLETED, FAILED, RUNNING, JobDir, process_start_time


def main(argv: list[str]) -> int:
    job = JobDir(Path(argv[0]))
    config = TrainingConfig.load(job.config)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    main_process = rank == 0

    def log(message: str) -> None:
        prefix = f"[{rank}] " if world > 1 else ""
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {prefix}{message}", flush=True)

    def status(**changes: object) -> None:
        if main_process:
            job.write_status(**changes)

    from foundryctl.training.loop import Canceled, Trainer, install_signal_handlers

    if world == 1:
        status(state=RUNNING, pid=os.getpid(), pid_start=process_start_time(os.getpid()),
               started_at=time.time(), error=None)
    else:
        status(state=RUNNING, started_at=time.time(), error=None)
    if config.task == "text_classification":
        from foundryctl.training.classification import ClassificationTrainer

        trainer: Trainer = ClassificationTrainer(config, job, log)
    else:
        trainer = Trainer(config, job, log)
    install_signal_handlers(trainer)
    try:
        result = trainer.run()
    except Canceled:
        log("canceled; the last checkpoint is kept")
        status(state=CANCELED)
        return 0
    except Exception as exc:
        traceback.print_exc()
        status(state=FAILED, error=f"{type(exc).__name__}: {exc}")
        return 1
    if main_process:
        try:
            from foundryctl.training.report import write_report

            write_report(job)
        except Exception:  # the report is a convenience; the model is what matters
            traceback.print_exc()
    status(state=COMPLETED, finished_at=time.time(), **result)
    log(f"completed: {result['steps']} steps, {result['tokens']:,} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
