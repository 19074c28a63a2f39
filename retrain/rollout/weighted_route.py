"""What the ``gateway-api`` and ``istio`` routers share: one entry of a list of routing
rules (an HTTPRoute's ``spec.rules[]``, a VirtualService's ``spec.http[]``) holds a
list of weighted targets (``backendRefs[]``, ``route[]``), two of which are the stable
and the canary; a split writes ``stable = 100 - p`` and ``canary = p`` on those two and
leaves every other rule, target and field as read.

A route points at Services (or mesh subsets), each serving a Deployment with its own
model; which model that is, is not the route's business: the operator, or the
``replicas`` router, sets it. So these routers cannot report versions
(:class:`Split` carries None) and cannot make the stable target serve the candidate.
Flagger promotes by copying the canary's spec to the primary Deployment, waiting for it,
then routing all traffic back to the primary; of that, a route can do only the routing.
:meth:`WeightedRoute.promote` therefore sends 100% to the canary target and is done at
once: the canary backend serves all traffic from then on, and moving the candidate into
the stable Deployment (and the route back to it) is left to the operator before the next
rollout, whose stable target would otherwise serve the old model again.
:meth:`WeightedRoute.rollback` sends 100% to the stable target, also done at once.

Every call reads the object and writes only when the wanted weights differ from those
read, so a repeated call makes no write; see :mod:`retrain.rollout.custom_objects` for
the optimistic concurrency and the error classes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from retrain.rollout.base import Progress, Split, Target, check_percent
from retrain.rollout.custom_objects import CustomObject, Obj, invalid

Match = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class RouteShape:
    """Where the weights live in one kind of object, and how a missing weight reads."""

    rules: str  # the list of routing rules under spec
    targets: str  # each rule's list of weighted targets
    rule_word: str  # what the rules are called, for messages
    default_weight: int  # the weight of a target that has none, among several
    exclusive: bool  # other targets of the rule must carry no weight (Istio sums to 100)


@dataclass(frozen=True, slots=True)
class Pick:
    """Which rule (its index, or its ``name``) and which of its targets are stable and
    canary (predicates on a target, with a label for messages)."""

    rule: int | str
    stable: Match
    canary: Match
    stable_label: str
    canary_label: str


class WeightedRoute:
    """A router over one rule of one routing object; see the module docstring."""

    def __init__(self, obj: CustomObject, shape: RouteShape, pick: Pick) -> None:
        self._obj, self._shape, self._pick = obj, shape, pick

    def set_weights(self, stable: Target, canary: Target, canary_percent: int) -> Split:
        check_percent(canary_percent)
        return Split(self._apply(100 - canary_percent, canary_percent))

    def get_weights(self) -> Split:
        rules = self._rules(self._obj.get())
        stable, canary = self._weights(rules[self._index(rules)])
        return Split(_percent(stable, canary))

    def promote(self, candidate: Target) -> Progress:
        self._apply(0, 100)
        return Progress(
            True,
            f"{self._pick.canary_label} serves all traffic of {self._obj.ref}; the stable "
            f"backend still serves the old model until its Deployment runs "
            f"{candidate.version}",
        )

    def rollback(self, stable: Target) -> Progress:
        self._apply(100, 0)
        return Progress(True, f"{self._pick.stable_label} serves all traffic of {self._obj.ref}")

    def _apply(self, stable_weight: int, canary_weight: int) -> int:
        """Write the two weights unless they are already there; the canary percent read back."""
        read = self._obj.get()
        rules = self._rules(read)
        index = self._index(rules)
        wanted = copy.deepcopy(rules)
        for target in wanted[index][self._shape.targets]:
            if self._pick.stable(target):
                target["weight"] = stable_weight
            elif self._pick.canary(target):
                target["weight"] = canary_weight
        self._check_others(wanted[index])
        if wanted != rules:
            stored = self._obj.patch(read, {"spec": {self._shape.rules: wanted}})
            rules = self._rules(stored)
            index = self._index(rules)
        return _percent(*self._weights(rules[index]))

    def _rules(self, obj: Obj) -> list[dict[str, Any]]:
        rules = (obj.get("spec") or {}).get(self._shape.rules)
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise invalid(self._obj.ref, f"spec.{self._shape.rules} is not a list of rules")
        return rules

    def _index(self, rules: list[dict[str, Any]]) -> int:
        rule, field = self._pick.rule, f"spec.{self._shape.rules}"
        if isinstance(rule, int):
            if not 0 <= rule < len(rules):
                raise invalid(self._obj.ref, f"{field} has no {self._shape.rule_word} {rule}")
            index = rule
        else:
            named = [i for i, r in enumerate(rules) if r.get("name") == rule]
            if not named:
                raise invalid(self._obj.ref, f"{field} has no {self._shape.rule_word} {rule!r}")
            index = named[0]
        if not isinstance(rules[index].get(self._shape.targets), list):
            raise invalid(self._obj.ref, f"{field}[{index}].{self._shape.targets} is not a list")
        return index

    def _weights(self, rule: Mapping[str, Any]) -> tuple[int, int]:
        """The stable and canary weights of ``rule``; both targets must be in it, once."""
        targets = [t for t in rule[self._shape.targets] if isinstance(t, dict)]
        found: list[int] = []
        for match, label in (
            (self._pick.stable, self._pick.stable_label),
            (self._pick.canary, self._pick.canary_label),
        ):
            hits = [t for t in targets if match(t)]
            if len(hits) != 1:
                count = "no" if not hits else f"{len(hits)} entries for"
                raise invalid(
                    self._obj.ref,
                    f"{self._shape.rule_word} {self._pick.rule!r} has {count} {label} in "
                    f"{self._shape.targets}",
                )
            default = 100 if len(targets) == 1 else self._shape.default_weight
            found.append(int(hits[0].get("weight", default)))
        return found[0], found[1]

    def _check_others(self, rule: Mapping[str, Any]) -> None:
        self._weights(rule)
        if not self._shape.exclusive:
            return
        others = [
            t
            for t in rule[self._shape.targets]
            if not (self._pick.stable(t) or self._pick.canary(t))
            and int(t.get("weight", self._shape.default_weight)) != 0
        ]
        if others:
            raise invalid(
                self._obj.ref,
                f"{self._shape.rule_word} {self._pick.rule!r} has weighted {self._shape.targets} "
                "besides the stable and canary: their weights must sum to 100 with them",
            )


def _percent(stable: int, canary: int) -> int:
    """The canary's share in percent of the two weights (relative weights: 1 and 3 is 75%)."""
    total = stable + canary
    return 0 if total <= 0 else round(100 * canary / total)
