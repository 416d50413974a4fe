"""Whether a process named in the store (a lease holder, a status row's writer) is another
live process on this machine.

Collectors write "<host>:<pid>:..." into leases and status rows. A collector restarted
after a crash (SIGKILL, OOM) finds its predecessor's entries, which only a pid check can
tell apart from a second live collector of the same name: the process table of this
machine is the one authority. A pid reused by an unrelated process reads as alive, which
errs on the safe side (a lease is then waited out, not taken).
"""
from __future__ import annotations

import os
import socket

import psutil


def this_host(width: int) -> str:
    """This machine's name, cut as the ids written to the store cut it."""
    return socket.gethostname()[:width]


def other_live_process_here(host: str, pid: str | int) -> bool:
    """True when `host` (as written) is this machine and `pid` a running process that is
    not this one."""
    try:
        number = int(pid)
    except (TypeError, ValueError):
        return False
    if host != this_host(len(host)) or number == os.getpid() or number <= 0:
        return False
    try:  # a killed process its parent has not reaped yet is a zombie: gone all the same
        return psutil.Process(number).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # there, but not ours to look at: alive
        return True
