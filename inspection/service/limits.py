"""Upload limits enforced before the body is parsed: a request larger than the total allowed is
refused from its Content-Length, or (sent chunked) as soon as the bytes received pass the limit,
so nothing unbounded is spooled to disk. Per photo: bytes, then pixels from the header."""

from __future__ import annotations

import io

from PIL import Image
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from inspection.service.errors import PayloadTooLarge, error_response

MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the small form fields


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes + MULTIPART_OVERHEAD
        self.limited = RequestBodyLimitMiddleware(app, self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, "payload_too_large", self._message(int(declared)),
                                      "photos")
            await response(scope, receive, send)
            return
        # Sent chunked: Starlette's limiter counts bytes as they arrive (FastAPI knows its error
        # and re-raises it as a 413 that errors.py renders).
        await self.limited(scope, receive, send)

    def _message(self, size: int) -> str:
        limit = self.max_bytes - MULTIPART_OVERHEAD
        return f"the upload is {size:,} bytes; at most {limit:,} bytes of photos are accepted"


def check_photo_size(data: bytes, where: str, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{where} is {len(data):,} bytes; the limit is {max_bytes:,} per photo",
                              where)


def check_photo_pixels(data: bytes, where: str, max_pixels: int) -> None:
    """Refuse a decompression bomb from its header alone (decoding is what costs)."""
    try:
        width, height = Image.open(io.BytesIO(data)).size
    except Exception:  # noqa: BLE001 - not an image: decode_photo reports it with a clear reason
        return
    if width * height > max_pixels:
        msg = (f"{where} is {width}x{height} = {width * height:,} pixels; "
               f"the limit is {max_pixels:,}")
        raise PayloadTooLarge(msg, where, code="too_many_pixels")
