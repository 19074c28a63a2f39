"""Model replacement: retrain policy, executors, validation gates and canary rollout.

Nothing lives here yet; the retraining issues build it on the drift reports
that :mod:`drift` and :mod:`db` produce.
"""
