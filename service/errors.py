"""Errors raised while wiring the service.

ServiceError
├── ConfigError   the configuration is missing, unreadable or invalid
└── RenderError   a report could not be rendered now (retriable: the next tick retries)
    ├── RenderBusy  the API's renderer has as many requests as it takes; retry later
    └── ReportUnrenderable  the report itself fails to render (a stored sample
                            that cannot be read, data Evidently refuses): retrying
                            it changes nothing
"""


class ServiceError(Exception):
    retriable: bool = False


class ConfigError(ServiceError):
    """Carries one line per problem, each naming the key and what was expected."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class RenderError(ServiceError):
    retriable = True


class RenderBusy(RenderError):
    pass


class ReportUnrenderable(RenderError):
    retriable = False
