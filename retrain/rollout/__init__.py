"""Rollouts: moving live traffic from the production version to an accepted candidate.

:mod:`retrain.rollout.base` holds the router protocol every backend implements.
"""
