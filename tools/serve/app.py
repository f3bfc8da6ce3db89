"""The Starlette application: the page at ``/``, the JSON API under ``/api``, and its error handling.

Every error reaches the client as ``{"error": "<one line>", "status": N}``: refused input with its
4xx status, anything unexpected as 500 with its type only (the traceback goes to the server's log,
never to the client). The request body is capped by Starlette's ``RequestBodyLimitMiddleware``, which
checks Content-Length before reading anything and counts bytes while reading otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnistkit.tools.serve import api
from mnistkit.tools.serve.errors import ApiError
from mnistkit.tools.serve.openapi import openapi_document

STATIC = Path(__file__).with_name("static")
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/app.css": ("app.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; object-src 'none'; "
                                "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
}
log = logging.getLogger("mnistkit.serve")


def error(status: int, message: str) -> JSONResponse:
    """The JSON error document every refusal uses."""
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers={"X-Content-Type-Options": "nosniff"})


class DeclaredSizeGuard:
    """Answer 413 in JSON when Content-Length is over the limit, before the app reads anything.

    Starlette's ``RequestBodyLimitMiddleware`` (inside this one) counts the bytes of bodies without
    a Content-Length; for declared sizes it would answer in plain text, so this check comes first.
    """

    def __init__(self, app, max_body_size: int, message: str):
        self.app = app
        self.max_body_size = max_body_size
        self.message = message

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_body_size:
                await error(413, self.message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(state: api.ServeState) -> Starlette:
    """Build the application around a loaded classifier and its worker pool.

    Args:
        state: the shared classifier, worker pool, limits and model description.

    Returns:
        An ASGI application.
    """
    pages = {route: ((STATIC / name).read_bytes(), ctype) for route, (name, ctype) in PAGES.items()}
    openapi = openapi_document(state.model, state.limits)

    async def page(request: Request) -> Response:
        body, ctype = pages[request.url.path]
        return Response(body, media_type=ctype, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    async def classify(request: Request) -> JSONResponse:
        return JSONResponse(await api.classify_endpoint(request))

    async def model(request: Request) -> JSONResponse:
        return JSONResponse(state.model)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": state.model["file"], "backend": state.model["backend"]})

    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(openapi)

    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.message)

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 413:
            return error(413, api.upload_too_large(state.limits))
        if exc.status_code == 404:
            return error(404, f"no such page: {request.url.path[:80]}; the page is at /, the API "
                              "at /api/classify and /api/model, its description at /openapi.json")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path[:80]}; "
                              "see /openapi.json")
        return error(exc.status_code, str(exc.detail))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path,
                  exc_info=exc)
        return error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    routes = [Route(path, page, methods=["GET", "HEAD"]) for path in PAGES]
    routes += [
        Route("/api/classify", classify, methods=["POST"]),
        Route("/api/model", model, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(DeclaredSizeGuard, max_body_size=state.limits.max_upload_bytes,
                       message=api.upload_too_large(state.limits)),
            Middleware(RequestBodyLimitMiddleware, max_body_size=state.limits.max_upload_bytes),
        ],
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_unexpected},
    )
    app.state.serve = state
    return app
