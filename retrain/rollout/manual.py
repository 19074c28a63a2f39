"""The ``manual`` router (alias ``none``): driftwatch moves no traffic.

Someone else does: a person, or a controller that already owns the split (Argo
Rollouts, Flagger, a mesh's own canary) and asks driftwatch only for its verdict.
Every call says what that party must do and returns at once:

- :meth:`ManualRouter.set_weights` reports the requested percent as the split, with
  no versions: driftwatch cannot read what is really served, so the rollout's
  analysis is what tells whether the canary receives its share (the sample-ratio
  check sees a split that was not applied);
- :meth:`ManualRouter.promote` and :meth:`ManualRouter.rollback` are done at once,
  since there is nothing for driftwatch to wait on; their note is the instruction.

The rollout then waits on an external verdict: it advances, promotes or rolls back
only as the analysis or an operator's command decides, and the traffic follows only
if the external party acts on the same verdict.
"""

from __future__ import annotations

from retrain.rollout.base import Progress, Split, Target, check_percent


class ManualRouter:
    """Changes no traffic; ``instructions`` keeps what was asked, newest last."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.instructions: list[str] = []
        self._percent = 0

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        check_percent(canary_percent)
        self._percent = canary_percent
        self._say(
            f"send {canary_percent}% of {self.model}'s traffic to {_named(canary)} and the "
            f"rest to {_named(stable)}"
        )
        return Split(canary_percent)

    def get_weights(self) -> Split:
        """The percent last requested of this router (0 before any): what is served is
        not known here."""
        return Split(self._percent)

    def promote(self, candidate: Target) -> Progress:
        self._percent = 0
        return Progress(True, self._say(
            f"make {_named(candidate)} the stable version of {self.model} with all "
            "traffic, then retire the canary"
        ))  # fmt: skip

    def rollback(self, stable: Target) -> Progress:
        self._percent = 0
        return Progress(True, self._say(
            f"send all of {self.model}'s traffic back to {_named(stable)} and retire the canary"
        ))  # fmt: skip

    def _say(self, what: str) -> str:
        note = f"manual router: driftwatch changes no traffic; {what}"
        self.instructions.append(note)
        return note


def _named(target: Target) -> str:
    return f"version {target.version} ({target.uri}, sha256 {target.sha256})"
