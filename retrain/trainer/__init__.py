"""The reference trainer: ``python -m retrain.trainer``, also the container entrypoint.

It honours the job contract of :mod:`retrain.executors`: it reads the exported
labeled rows at ``DRIFTWATCH_DATA_URI``, trains (``DRIFTWATCH_MODE=train``) or
scores champion and candidate (``validate``), and writes its JSON result (at
most 4096 bytes) to ``DRIFTWATCH_RESULT_PATH``. A failure exits 1 with one
line on stderr (``driftwatch-trainer: <message>``) and writes no result.
Users may replace it with any program that honours the same contract
(README: "Bring your own trainer").

Training refits the champion: the production model is loaded (sha256 and
trusted types checked), cloned (pipeline, preprocessing, hyperparameters)
and fitted on the run's training rows, on the columns it was fitted on and
with labels of its classes' dtype. When asked, when no champion is given, or
when the champion is not a scikit-learn estimator, a histogram
gradient-boosting pipeline is fitted instead
(:mod:`retrain.trainer.estimators`). An optional successive-halving search
around the estimator's hyperparameters runs within a time budget
(:mod:`retrain.trainer.search`). The result records what was fitted under
``"fitted"``; the process prints it on one line.

Environment it reads:

- ``DRIFTWATCH_MODE``: ``train`` or ``validate``.
- ``DRIFTWATCH_DATA_URI``: the exported labeled rows (Parquet, any fsspec URI).
- ``DRIFTWATCH_RESULT_PATH``: where the JSON result goes.
- ``DRIFTWATCH_TASK``: ``classification`` (default) or ``regression``.
- ``DRIFTWATCH_HOLDOUT_SHARE``: the latest share of rows held out (default 0.2).
- ``DRIFTWATCH_TRUSTED_TYPES``: comma-separated extra skops types the champion
  (and, in validate mode, the candidate) may name.
- ``DRIFTWATCH_CHAMPION_URI``, ``DRIFTWATCH_CHAMPION_SHA256``: the production
  model (train: the model to refit, optional; validate: required).
- train only: ``DRIFTWATCH_OUTPUT_URI`` (where ``model.skops`` is written),
  ``DRIFTWATCH_ESTIMATOR`` (``champion``, the default, or ``default``),
  ``DRIFTWATCH_SEARCH_SECONDS`` (the search's time budget; unset or 0: no search).
- validate only: ``DRIFTWATCH_CANDIDATE_URI``, ``DRIFTWATCH_CANDIDATE_SHA256``,
  ``DRIFTWATCH_SLICE_FEATURE`` (optional, a categorical feature to score per value).
"""

from retrain.trainer.run import TRAINER, Contract, train, validate

__all__ = ["TRAINER", "Contract", "train", "validate"]
