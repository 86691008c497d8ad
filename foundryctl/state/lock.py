"""Who holds a state lock, and whether that holder is still alive."""

from __future__ import annotations

import getpass
import os
import socket
import sys
from pathlib import Path

from foundryctl.state.records import LockInfo


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): fall back to the uid
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def current_host() -> str:
    return socket.gethostname()


def current_command() -> str:
    """This process's command line, as history and locks record it (--var values redacted)."""
    from foundryctl.sensitive import redact_argv

    args = [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv and sys.argv[0] else ["python"]
    return " ".join(redact_argv(args))


def process_start(pid: int) -> str | None:
    """Kernel start time of a process (Linux), so a reused pid is not mistaken for the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counts from after the parenthesised command name.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def holder_alive(lock: LockInfo) -> bool | None:
    """True or False when it can be known (same host); None for a holder on another host."""
    if lock.host != current_host():
        return None
    try:
        os.kill(lock.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    if lock.process_start is not None:
        start = process_start(lock.pid)
        if start is not None and start != lock.process_start:
            return False  # the pid was reused by another process
    # A zombie (killed, not yet reaped by its parent) holds nothing.
    try:
        state = Path(f"/proc/{lock.pid}/stat").read_text()
        if state[state.rfind(")") + 2:].startswith("Z"):
            return False
    except OSError:
        pass
    return True
