"""Model replacement: when a model is retrained, how, and whether its candidate wins.

:mod:`retrain.policy` turns drift reports, performance reports, concept-drift
alarms, cron fire times and manual requests into trigger decisions;
:mod:`retrain.runs` and :mod:`retrain.phases` drive each run through its phases
on executors (:mod:`retrain.executors`: local processes or Kubernetes Jobs)
that run the reference trainer (:mod:`retrain.trainer`) or a user's image;
:mod:`retrain.gates` judges the candidate against the champion. Canary rollout
builds on the ``accepted`` verdict. Nothing here imports Kafka.
"""
