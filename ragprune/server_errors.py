"""Error answers of the HTTP server, in the shape each route's clients parse.

Cohere-shaped routes (``/v1/rerank``, ``/v2/rerank``, ``/v1/prune``, and everything else) answer
``{"message": ...}`` as Cohere's API does, so its SDKs raise their typed errors with the message;
text-embeddings-inference routes (``/rerank``, ``/info``) answer ``{"error": ..., "error_type": ...}``
as TEI does. Every error is JSON with a 4xx status when the request is at fault: malformed JSON,
invalid fields, input the model cannot take (``ValueError``/``TypeError`` from the library). Only a
bug in ragprune itself gives a 500, still as JSON and without dropping the connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request

EXAMPLE_REQUEST = (
    '{"query": "how long do fleas live?", "documents": ["Fleas live up to a year.", "Paris is big."]}'
)
TEI_ROUTES = frozenset({"/rerank", "/info"})
# TEI's error_type names (its ErrorType, lower case on the wire) by status.
TEI_ERROR_TYPES = {413: "validation", 422: "validation", 400: "validation", 429: "overloaded"}


class SafeJSONResponse(JSONResponse):
    """JSON as Starlette writes it (UTF-8, no NaN); a string UTF-8 cannot hold, such as a lone surrogate a
    client sent as ``\\ud800`` in metadata, is written back as that ``\\u`` escape instead of failing."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(
    path: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The error body for ``path``'s family of clients (see the module docstring)."""
    if path in TEI_ROUTES:
        error_type = TEI_ERROR_TYPES.get(status, "backend" if status >= 500 else "validation")
        body: dict[str, Any] = {"error": message, "error_type": error_type}
    else:
        body = {"message": message}
    return SafeJSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error raised while answering a request through :func:`error_response`.

    Handlers are registered per exception class (not for ``Exception``): Starlette handles those in its
    exception middleware and keeps the connection, whereas a catch-all handler still re-raises.
    """

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(request.url.path, error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        status, message = describe_validation_error(error)
        return error_response(request.url.path, status, message)

    async def bad_input(request: Request, error: Exception) -> JSONResponse:
        return error_response(request.url.path, 422, f"{error}; send e.g. {EXAMPLE_REQUEST}")

    async def internal(request: Request, error: Exception) -> JSONResponse:
        message = f"internal error ({type(error).__name__}: {error}); please report it with the request"
        return error_response(request.url.path, 500, message)

    for refused in (ValueError, TypeError):  # input the library refuses (UnicodeError is a ValueError)
        app.add_exception_handler(refused, bad_input)
    for bug in (LookupError, RuntimeError, ArithmeticError, AttributeError, AssertionError, OSError):
        app.add_exception_handler(bug, internal)


def describe_validation_error(error: RequestValidationError) -> tuple[int, str]:
    """Status and message for a request FastAPI could not parse or validate, naming each bad field."""
    problems = error.errors()
    bad_json = next((p for p in problems if p.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = bad_json.get("ctx", {}).get("error", "JSON decode error")
        position = bad_json["loc"][-1]
        return (
            400,
            f"request body is not valid JSON ({reason} at character {position}); send e.g. {EXAMPLE_REQUEST}",
        )
    if any(tuple(problem["loc"]) == ("body",) for problem in problems):
        return 422, (
            "the request body must be a JSON object sent with Content-Type: application/json, "
            f"e.g. {EXAMPLE_REQUEST}"
        )
    described = [
        f"{'.'.join(str(part) for part in problem['loc'] if part != 'body')}: {problem['msg']}"
        for problem in problems
    ]
    return 422, "; ".join(described) + f" (send e.g. {EXAMPLE_REQUEST})"
