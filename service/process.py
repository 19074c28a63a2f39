"""Process-wide settings the service applies at start-up, before any thread exists."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter number for the arena limit


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; True when the cap was applied.

    glibc gives threads that allocate concurrently their own arenas (up to
    eight per core), and memory freed in one arena is not reused by another.
    The consumer's main thread and kafka-python's network thread allocate and
    free constantly, so without a cap the resident set creeps up by tens of
    megabytes over millions of events; with two arenas it stays flat
    (``bench/memory.py``). An explicit ``MALLOC_ARENA_MAX`` in the environment
    wins, and on a libc without ``mallopt`` nothing happens.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
