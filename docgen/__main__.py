"""``python -m docgen``: write the generated reference pages under docs/reference/."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from docgen import api_ref, cli_ref, config_ref

ROOT = Path(__file__).resolve().parents[1]
PAGES: dict[str, Callable[[], str]] = {
    "docs/reference/config.md": config_ref.render,
    "docs/reference/cli.md": cli_ref.render,
    "docs/reference/http-api.md": api_ref.render,
}


def main() -> int:
    missing = config_ref.undocumented()
    if missing:
        print(f"configuration keys without a description: {missing}", file=sys.stderr)
        print(f"describe them in service/config/ or {config_ref.DESCRIPTIONS}", file=sys.stderr)
        return 1
    for page, render in PAGES.items():
        path = ROOT / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
