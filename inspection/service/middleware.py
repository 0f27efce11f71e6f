"""The outermost layer of the app that the project owns: every request is counted and timed
(5xx included), an unexpected exception is logged once and answered as the JSON 500, and HEAD
is served wherever GET is.

Pure ASGI rather than `@app.middleware("http")`: an exception that escapes the routes is caught
here, so Starlette's ServerErrorMiddleware never sees it, never re-raises it to the server, and
the traceback is logged exactly once.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inspection.service.errors import error_response
from inspection.service.metrics import ServiceMetrics

log = logging.getLogger("inspection.service.errors")


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        head = method == "HEAD"
        if head:  # answer as GET would, without the body (RFC 9110 9.3.2)
            scope = {**scope, "method": "GET"}
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = int(message["status"]), True
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unexpected error on %s %s", method, scope.get("path", ""))
            status = 500
            if not response_started:
                response = error_response(500, "internal_error",
                                          "the service hit an unexpected error; it has been logged")
                await response(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # a template: bounded labels
            self.metrics.observe(method, route, status, time.perf_counter() - started)
