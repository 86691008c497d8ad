"""The local runner: LoRA (or full) fine-tuning with torch, transformers and peft, run as a
detached process with its own job directory (see jobdir.py). Heavy imports stay inside
functions, so the CLI and the backend can read job directories without torch."""
