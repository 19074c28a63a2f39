"""The reference trainer: ``python -m retrain.trainer``, also the container entrypoint.

It honours the job contract of :mod:`retrain.executors`: it reads the exported
labeled rows at ``DRIFTWATCH_DATA_URI``, trains (``DRIFTWATCH_MODE=train``) or
scores champion and candidate (``validate``), and writes its JSON result (at
most 4096 bytes) to ``DRIFTWATCH_RESULT_PATH``. A failure exits 1 with one
short line on stderr and writes no result. Users may replace it with any
program that honours the same contract (README: "Bring your own trainer").
"""

from retrain.trainer.run import TRAINER, Contract, train, validate

__all__ = ["TRAINER", "Contract", "train", "validate"]
