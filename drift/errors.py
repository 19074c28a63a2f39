"""Errors raised by the pure drift layer.

DriftError
├── SketchMismatch   two sketches that cannot be merged (other bins, features)
├── SketchCorrupt    bytes that do not decode to a sketch
└── ProfileMismatch  a reference profile that does not describe the model's features
"""


class DriftError(Exception):
    """Base class of every error raised by :mod:`drift`."""


class SketchMismatch(DriftError):
    """Raised when merging sketches built on different bins or schemas."""


class SketchCorrupt(DriftError):
    """Raised when serialised sketch bytes cannot be decoded."""


class ProfileMismatch(DriftError):
    """Raised when a reference profile's features differ from a model's."""
