"""What every leader-election backend offers the scheduler.

An elector runs beside the service (usually in a daemon thread) from :meth:`start`
until :meth:`stop`; the scheduler asks :meth:`is_leader` when a leader-only job is
due and skips the job on any other replica. Leadership is advisory: every side
effect of those jobs is idempotent anyway (deterministic names, unique keys), so a
short overlap while a lease changes hands costs duplicated work, never wrong data.
"""

from __future__ import annotations

from typing import Protocol


class Elector(Protocol):
    @property
    def backend(self) -> str:
        """The backend's name, the ``backend`` label of ``driftwatch_leader``."""
        ...

    def is_leader(self) -> bool:
        """True while this replica holds the leadership."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None:
        """Stop campaigning and give the leadership up, so another replica takes over
        without waiting for it to expire."""
        ...
