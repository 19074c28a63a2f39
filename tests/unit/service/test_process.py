"""Process-wide start-up settings."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from service.process import limit_malloc_arenas, pin_mmap_threshold

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_arena_cap_applies_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True


def test_an_explicit_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


# A child process, so the allocator starts clean: it frees a 16 MiB buffer, which
# without a pinned threshold makes glibc serve every later buffer up to that size
# from the heap, then holds an 8 MiB one and reports whether it was mmapped.
_AFTER_A_BIG_FREE = """
import ctypes, sys
from service.process import pin_mmap_threshold
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
pinned = pin_mmap_threshold()
first = bytearray(16 << 20)
del first
held = bytearray(8 << 20)
print(pinned, libc.mallinfo2().hblkhd >= len(held))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_big_buffers_stay_mmapped_after_a_big_free() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_A_BIG_FREE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["True", "True"]


def test_an_explicit_mmap_threshold_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert pin_mmap_threshold() is False


# A child process: a frozen heap is never collected again, which this test session
# must not suffer. Start-up garbage (a reference cycle) is collected before the
# freeze, what start-up built is frozen, and what comes after is collected as usual.
_SETTLED = """
import gc, weakref
from service.process import YOUNG_THRESHOLD, settle_heap
class Node:
    pass
kept, garbage = Node(), Node()
garbage.self = garbage
gone = weakref.ref(garbage)
del garbage
settle_heap()
frozen = gc.get_freeze_count()
later = Node()
later.self = later
seen_later = weakref.ref(later)
del later
gc.collect()
print(gone() is None, frozen > 0, gc.get_threshold()[0] == YOUNG_THRESHOLD, seen_later() is None)
"""


def test_settle_heap_collects_then_freezes_start_up_and_spaces_collections() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", _SETTLED], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True", "True", "True"]
