"""Generators of the documentation site's reference pages (``python -m docgen``).

Each page is made from the code it documents: the configuration keys from the pydantic
models of :mod:`service.config`, the commands from the argparse parser of
:mod:`service.cli.main`, the HTTP API from the application's OpenAPI document.
``tests/unit/test_docs_site.py`` fails when a committed page differs from what these
generators make now, when a configuration key has no description, and when the site
does not build with ``mkdocs build --strict``.
"""
