"""The no-op backend: a single process (SQLite) is always the leader."""

from __future__ import annotations


class AlwaysLeader:
    backend = "none"

    def is_leader(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
