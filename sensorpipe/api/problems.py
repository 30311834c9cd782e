"""Errors as RFC 9457 problem details (`application/problem+json`), always with a 4xx status
for bad input: what was wrong and how to ask instead."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    422: "Unprocessable Content",
    503: "Service Unavailable",
}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class ApiProblem(Exception):
    """Raised by a handler: answered as a problem with this status and detail."""

    def __init__(
        self, status: int, detail: str, *, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


def bad_request(detail: str, parameter: str | None = None) -> ApiProblem:
    errors = [{"parameter": parameter, "detail": detail}] if parameter else None
    return ApiProblem(400, detail, errors=errors)


def problem_response(
    status: int,
    detail: str,
    request: Request | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


# What a parameter that does not match its pattern should look like, in words.
_PATTERN_HINTS = {
    "device": "device ids are lower-case letters, digits, '_' and '-', starting with a letter "
    "or digit (up to 64)",
    "device_id": "device ids are lower-case letters, digits, '_' and '-', starting with a "
    "letter or digit (up to 64)",
    "site": "site names are letters, digits, '.', '_' and '-', starting with a letter or digit "
    "(up to 64)",
    "every": "use an interval from 1m to 1d, like 1m, 15m, 1h or 1d",
    "quantity": "quantity names are lower-case, like pm2_5 or temperature",
    "class": "class names are lower-case, like pedestrian or cyclist",
    "direction": "direction names are lower-case, like left_to_right",
}


def _explain(error: Any) -> str:
    """A validation error in words: what was given and what would do."""
    loc = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
    name = loc[-1] if loc else ""
    given = error.get("input")
    shown = repr(given) if len(repr(given)) <= 60 else repr(given)[:57] + "..."
    if error.get("type") == "string_pattern_mismatch" and name in _PATTERN_HINTS:
        return f"{shown}: {_PATTERN_HINTS[name]}"
    if error.get("type") in ("string_too_long", "too_long"):
        return f"{shown}: {error.get('msg', 'too long')}"
    return str(error.get("msg", "invalid"))


def _location(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "header", "body")]
    return ".".join(parts) or "request"


def install_problem_handlers(app: FastAPI) -> None:
    _document_invalid_requests_as_400(app)

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.status, exc.detail, request, exc.errors, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"parameter": _location(e.get("loc", ())), "detail": _explain(e)} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['parameter']}: {e['detail']}" for e in errors)
        return problem_response(400, detail or "invalid request", request, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}; the API is described at /docs"
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, detail, request, headers=headers)


def _document_invalid_requests_as_400(app: FastAPI) -> None:
    """FastAPI documents a 422 for every route with parameters; here invalid parameters are
    a 400 problem (declared with PROBLEM_RESPONSES), so the 422 is taken out of /openapi.json."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = make()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


# For OpenAPI. The schema is given under application/problem+json itself: FastAPI would put a
# response `model` under application/json, a type these answers never have.
_PROBLEM_SCHEMA = Problem.model_json_schema()
_DESCRIPTIONS = {
    400: "Invalid parameters",
    401: "A bearer token is needed, or the one given is not listed",
    404: "No such device, site or resource",
    503: "The time series store does not answer",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For OpenAPI: problem answers (application/problem+json) with these statuses."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, _TITLES.get(status, "Error")),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


# The problem answers every route can give.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(400)
