"""The operations HTTP API: FastAPI routes served by uvicorn inside ``driftwatch run``.

``deps`` holds what the handlers need, each ``routes_*`` module one router of
module-level handlers, ``app`` puts them together (see :func:`service.api.app.create_app`).
"""
