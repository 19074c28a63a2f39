"""The router protocol: how a rollout moves live traffic between two model versions.

A router splits a model's traffic between the *stable* version (production) and
the *canary* (the candidate under analysis), promotes the canary to stable, or
rolls it back. The rollout state machine calls it after committing each step, so
every operation must be idempotent and safe to repeat after a crash: it states
the wanted end state ("canary at 25%", "stable serves X"), never a change
("add 20%"). A backend that needs time to converge (Pods to become available)
returns :attr:`Progress.done` false and is called again on the next tick; it
never blocks waiting.

Weights are canary percentages, 0 to 100; a backend with coarser steps (replica
counts) rounds and reports what it applied in :class:`Split`. Backends:
``file`` (a JSON file the demo's serving layer reads), ``replicas`` (two
Deployments), ``gateway-api`` (an HTTPRoute's backendRefs weights), ``istio``
(a VirtualService route's weights), ``kserve`` (an InferenceService's
``canaryTrafficPercent``), ``manual`` (no traffic change: an external controller
or a person moves traffic) and ``fake`` (in memory, for tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from retrain.errors import RouterError


@dataclass(frozen=True, slots=True)
class Target:
    """A model version a router can send traffic to: its registry version, artifact
    URI and the sha256 of the artifact's bytes."""

    version: str
    uri: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Split:
    """What the backend serves now, as read back from it: the canary's share of traffic
    in percent (0-100, after the backend's rounding) and the versions it knows of
    (None where the backend cannot tell, as with ``manual``)."""

    canary_percent: int
    stable: str | None = None
    canary: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Whether a promotion or rollback has reached its end state; ``note`` says what is
    still awaited (``"stable Deployment fraud: 2 of 3 replicas available"``)."""

    done: bool
    note: str = ""


class Router(Protocol):
    """One model's traffic split. Every method states an end state and is idempotent;
    trouble the next tick may overcome raises :class:`retrain.errors.RouterError` with
    ``retriable`` true, anything else with it false."""

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        """Serve ``canary`` to ``canary_percent`` of traffic and ``stable`` to the rest;
        the split as applied (rounded by the backend)."""
        ...

    def get_weights(self) -> Split:
        """The split the backend serves now."""
        ...

    def promote(self, candidate: Target) -> Progress:
        """Make ``candidate`` the stable version with all traffic, then retire the canary;
        done once the backend serves only ``candidate``."""
        ...

    def rollback(self, stable: Target) -> Progress:
        """Send all traffic back to ``stable`` and retire the canary; done once the
        backend serves only ``stable``."""
        ...


def check_percent(canary_percent: object) -> int:
    """``canary_percent`` if it is a whole percent from 0 to 100; anything else is a
    fatal :class:`retrain.errors.RouterError` (a caller's bug, never worth a retry)."""
    if (
        isinstance(canary_percent, bool)
        or not isinstance(canary_percent, int)
        or not 0 <= canary_percent <= 100
    ):
        raise RouterError(
            f"canary_percent: expected an integer from 0 to 100, got {canary_percent!r}",
            retriable=False,
        )
    return canary_percent
