"""``python -m retrain.trainer``: run one mode from the environment, exit 0 or 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from retrain.errors import RetrainError
from retrain.trainer.run import Contract, train, validate, write_result


def main(env: Mapping[str, str]) -> int:
    contract = Contract(env)
    try:
        mode = contract.get("DRIFTWATCH_MODE")
        if mode == "train":
            result = train(contract)
        elif mode == "validate":
            result = validate(contract)
        else:
            print(
                f"driftwatch-trainer: DRIFTWATCH_MODE must be train or validate, got {mode!r}",
                file=sys.stderr,
            )
            return 1
        write_result(contract.get("DRIFTWATCH_RESULT_PATH"), result)
    except RetrainError as exc:
        print(f"driftwatch-trainer: {exc}", file=sys.stderr)
        return 1
    if mode == "train":
        print(f"driftwatch-trainer: {describe(result)}")
    else:
        for side in ("champion", "candidate"):
            print(f"driftwatch-trainer: {side}: {result[side]['metrics']}")
    return 0


def describe(result: Mapping[str, Any]) -> str:
    """One line: what was fitted, from where, on how many rows, and how it scored."""
    fitted = result["fitted"]
    why = f": {fitted['why']}" if fitted.get("why") else ""
    searched = fitted.get("search")
    search = ""
    if searched is not None:
        search = f", search {searched.get('skipped') or 'kept ' + str(searched.get('kept'))}"
    return (
        f"fitted {fitted['estimator']} ({fitted['source']}{why}) on {fitted['rows']} rows "
        f"in {fitted['seconds']} s{search}; saved {result['model_uri']}: {result['metrics']}"
    )


def _exit(code: int) -> None:
    """End the process without tearing down the native thread pools.

    pyarrow's CPU pool, torn down at interpreter exit while a worker is still
    alive, sometimes aborts the process (SIGABRT, "terminate called without an
    active exception"; apache/arrow#34314), turning a finished job, result
    written, into a crash. The result file is closed by then, so only the
    standard streams need flushing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main(os.environ))
