"""Process-wide settings the service applies at start-up: allocator limits before any
thread exists, the garbage collector's once everything is built."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter number for the arena limit
_M_MMAP_THRESHOLD = -3  # and for the size from which blocks are mmapped


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
    return _mallopt("MALLOC_ARENA_MAX", _M_ARENA_MAX, arenas)


def pin_mmap_threshold(size: int = 1 << 20) -> bool:
    """Serve blocks of ``size`` bytes or more from mmap, always; True when applied.

    By default glibc raises the threshold to the size of each mmapped block
    that is freed (up to 32 MiB) and lets twice that stay free at the heap top.
    kafka-python's fetch responses run to megabytes (``max_partition_fetch_bytes``
    is 8 MiB), so after the first one is freed they all come from the heap,
    which swells by tens of megabytes and is seldom given back. A fixed
    threshold also turns that adjustment off: each such buffer goes back to the
    system when freed, and the heap stays where the live objects keep it
    (``bench/memory.py``). An explicit ``MALLOC_MMAP_THRESHOLD_`` wins.
    """
    return _mallopt("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, size)


def _mallopt(variable: str, parameter: int, value: int) -> bool:
    """glibc's ``mallopt(parameter, value)`` unless ``variable`` already set it."""
    if os.environ.get(variable):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(parameter, value))


# Young objects between collections of the youngest generation (CPython's default: 700).
# A poll hands over up to 5,000 records, each a few tracked objects kafka-python
# allocates (tuple, headers list), so at 700 a poll set off about twenty young
# collections that each walked the records still in hand and promoted them, and every
# tenth of those walked the older generation too. Above a few polls' worth, a
# collection comes once per several polls and finds most of them already freed:
# in bench/ingest.py's 200,000 events, GC took 0.85 s of the loop's 7.1-7.9 s CPU
# (626 young, 57 middle, 5 full collections over 184,000 tracked objects) with the
# defaults, and no collection ran at all after settle_heap (docs/performance.md).
YOUNG_THRESHOLD = 50_000


def settle_heap(young: int = YOUNG_THRESHOLD) -> None:
    """Freeze what start-up allocated and space out garbage collections; call once,
    when every part of the process is built and before the ingestion loop runs.

    The modules, configuration and clients a service builds are hundreds of
    thousands of tracked objects that live as long as the process: after a
    last collection of start-up garbage, ``gc.freeze`` moves them where no
    collection walks them again, so each full collection costs what the
    running loop holds, not what the imports left behind.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, *gc.get_threshold()[1:])
