"""Process wiring: configuration, CLI, metrics, and the long-running service."""
