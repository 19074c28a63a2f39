"""Pure drift statistics: schemas, mergeable window sketches, drift tests.

Nothing in this package performs I/O, logs, or reads the clock; callers pass
time and settings in. That keeps it fast to test and safe to reuse from a
notebook, a consumer process or a benchmark alike.
"""
