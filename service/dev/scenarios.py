"""The real-model scenarios by the name ``produce-demo --scenario`` and the closed loop take."""

from __future__ import annotations

from service.dev.concept import CONCEPT, Scenario
from service.dev.interaction import INTERACTION

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (CONCEPT, INTERACTION)}
