"""The operations HTTP API: FastAPI routes served by uvicorn inside ``driftwatch run``."""

from service.api.app import ApiDeps, create_app

__all__ = ["ApiDeps", "create_app"]
