"""Riding out outages: exponential backoff, and one health flag over the loop's dependencies."""

from __future__ import annotations

from enum import StrEnum

from consumers.stats import IngestStats


class Dependency(StrEnum):
    KAFKA = "kafka"
    STORE = "store"
    DEAD_LETTERS = "dead_letters"


class Backoff:
    """Waits that double from ``first`` up to ``cap``, until :meth:`reset`."""

    def __init__(self, cap: float, first: float = 0.5) -> None:
        self.first, self.cap = first, cap
        self.current = first

    def next(self) -> float:
        """The wait to take now; the one after it doubles."""
        wait = self.current
        self.current = min(self.current * 2, self.cap)
        return wait

    def reset(self) -> None:
        self.current = self.first


class Health:
    """Reports healthy while every dependency answered its last call."""

    def __init__(self, stats: IngestStats) -> None:
        self._stats = stats
        self._down: set[Dependency] = set()

    def is_up(self, dependency: Dependency) -> bool:
        return dependency not in self._down

    def up(self, *dependencies: Dependency) -> None:
        self._down.difference_update(dependencies)
        self._stats.healthy(not self._down)

    def down(self, dependency: Dependency) -> None:
        self._down.add(dependency)
        self._stats.healthy(False)
