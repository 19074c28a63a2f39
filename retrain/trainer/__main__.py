"""``python -m retrain.trainer``: run one mode from the environment, exit 0 or 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

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
        print(f"driftwatch-trainer: trained {result['model_uri']}: {result['metrics']}")
    else:
        for side in ("champion", "candidate"):
            print(f"driftwatch-trainer: {side}: {result[side]['metrics']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ))
