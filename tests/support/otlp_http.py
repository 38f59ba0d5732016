"""A plain OTLP/HTTP client: one POST, the answer whatever its status."""

from __future__ import annotations

import urllib.error
import urllib.request

PROTOBUF = "application/x-protobuf"


def post(url: str, body: bytes, content_type: str = PROTOBUF, **headers: str):
    """(status, headers, body) of one POST; HTTP errors are answers here, not exceptions."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()
