"""The filesystem behind an artifact or data URI: local paths, ``s3://`` and any fsspec URI.

``s3://`` (and ``s3a://``) go through pyarrow's own S3 client rather than s3fs:
s3fs needs botocore, whose python-dateutil pin excludes the one the kubernetes
client needs, and pyarrow is a dependency already. Credentials, region and
endpoint come from the standard environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for an S3-compatible
store), never from a URI or a config file, so no secret is in what is logged or stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec import AbstractFileSystem

_S3 = ("s3://", "s3a://")


def is_s3(uri: str) -> bool:
    return uri.lower().startswith(_S3)


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names a remote store (any scheme but a local file's)."""
    return urlsplit(uri).scheme.lower() not in ("", "file")


def filesystem(
    uri: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[AbstractFileSystem, str]:
    """``(filesystem, path)`` for ``uri``; ``storage_options`` go to fsspec (not to S3)."""
    if is_s3(uri):
        from fsspec.implementations.arrow import ArrowFSWrapper
        from pyarrow import fs as pafs

        location = "s3://" + uri.split("://", 1)[1]
        arrow, path = pafs.FileSystem.from_uri(location)
        return ArrowFSWrapper(arrow), path
    fs, path = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
    return fs, path
