"""The composition root: every part of the running service built from the config."""
