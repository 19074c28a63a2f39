"""Errors raised by the pure drift layer.

DriftError
├── SketchMismatch   two sketches that cannot be merged (other bins, features)
├── SketchCorrupt    bytes that do not decode to a sketch
└── ProfileMismatch  a reference profile that does not describe the model's features
"""

from __future__ import annotations


class DriftError(Exception):
    """Base class of every error raised by :mod:`drift`."""

    def about(self, what: str) -> DriftError:
        """This error again, of its own class, naming what it came from (a stored row:
        whoever repairs or removes the row needs to know which one)."""
        return type(self)(f"{what}: {self}")


class SketchMismatch(DriftError):
    """Raised when merging sketches built on different bins or schemas."""


class SketchCorrupt(DriftError):
    """Raised when serialised sketch bytes cannot be decoded."""


class ProfileMismatch(DriftError):
    """Raised when a reference profile's features differ from a model's."""
