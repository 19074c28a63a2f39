"""The ``driftwatch`` command line: one module per command group, parsed in :mod:`.main`."""

from service.cli.main import main

__all__ = ["main"]
