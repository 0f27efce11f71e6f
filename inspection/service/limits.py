"""Upload limits enforced before the body is parsed: a request larger than the total allowed is
refused from its Content-Length, or (sent chunked) as soon as the bytes received pass the limit,
so nothing unbounded is spooled to disk. Per photo: bytes, then pixels from the header (a
tighter limit for formats decoded in full); per request: the pixels decoding will cost."""

from __future__ import annotations

import io

from PIL import Image
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from inspection.images import DEFAULT_MAX_FULL_PIXELS, decoded_pixels, pixel_limit
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


def check_photo_pixels(data: bytes, where: str, max_pixels: int,
                       max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS, min_side: int = 0) -> int:
    """Refuse a decompression bomb from its header alone (decoding is what costs); return the
    pixels decoding it will cost (0 for what is not an image: decode_photo says why)."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height, image_format = *image.size, image.format or ""
    except Exception:  # noqa: BLE001 - decoder libraries raise many kinds
        return 0
    limit = pixel_limit(image_format, max_pixels, max_full_pixels)
    if width * height > limit:
        msg = (f"{where} is {width}x{height} = {width * height:,} pixels; the limit is "
               f"{limit:,} for {image_format or 'this format'}")
        raise PayloadTooLarge(msg, where, code="too_many_pixels")
    return decoded_pixels(width, height, image_format, min_side)


def check_request_pixels(costs: list[int], max_request_pixels: int) -> None:
    """Bound a request's decoding work and memory, whatever mix of photos it sends."""
    total = sum(costs)
    if total > max_request_pixels:
        msg = (f"these photos decode to {total:,} pixels together; at most {max_request_pixels:,} "
               "per request (send fewer or smaller photos, or JPEGs)")
        raise PayloadTooLarge(msg, "photos", code="too_many_pixels")
