"""Errors raised by the pure drift layer.

DriftError
├── SketchMismatch   two sketches that cannot be merged (other bins, features)
└── SketchCorrupt    bytes that do not decode to a sketch
"""


class DriftError(Exception):
    """Base class of every error raised by :mod:`drift`."""


class SketchMismatch(DriftError):
    """Raised when merging sketches built on different bins or schemas."""


class SketchCorrupt(DriftError):
    """Raised when serialised sketch bytes cannot be decoded."""
