"""Errors raised while wiring the service.

ServiceError
└── ConfigError   the configuration is missing, unreadable or invalid
"""


class ServiceError(Exception):
    pass


class ConfigError(ServiceError):
    """Carries one line per problem, each naming the key and what was expected."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
