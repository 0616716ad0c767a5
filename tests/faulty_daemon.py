"""`dockgate run` with bytes corrupted on their way to the S3 archive: fault
injection lives here, in test code, never in the product.

``DOCKGATE_TEST_FLIP=<text>`` flips one bit of every PUT and part whose URL
contains <text>, after dockgate hashed it: only verification can catch it."""

from __future__ import annotations

import io
import os
import sys
from typing import Any

from gateway.archive import s3


def _flip_on_send(needle: str) -> None:
    connect = s3.S3Archive._connect

    def hook(request: Any, **_: Any) -> None:
        if needle not in request.url:
            return
        body = request.body
        data = body.getvalue() if isinstance(body, io.BytesIO) else bytes(body or b"")
        if data:
            request.body = bytes([data[0] ^ 1]) + data[1:]

    def connect_and_corrupt(self: s3.S3Archive) -> None:
        connect(self)
        for op in ("PutObject", "UploadPart"):
            self.client.meta.events.register(f"before-send.s3.{op}", hook)

    s3.S3Archive._connect = connect_and_corrupt  # type: ignore[method-assign]


if __name__ == "__main__":
    _flip_on_send(os.environ["DOCKGATE_TEST_FLIP"])
    from gateway.cli.main import main

    sys.exit(main())
