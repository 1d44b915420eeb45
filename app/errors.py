"""One error hierarchy, one body shape:
{"error": {"code", "message", "details": [{"path", "message"}]}}."""

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.db import disconnected


class ErrorDetail(BaseModel):
    """One problem, at its place in the request."""

    path: str = Field(
        description="The offending key as the request wrote it, e.g. `include[0].tags[1]`, "
        "`contacts[3].email`, `query.limit`; `body` for the body as a whole."
    )
    message: str = Field(description="What is wrong there, for people.")


class ErrorInfo(BaseModel):
    """What went wrong. A few errors add keys of their own: the 409 of a job's
    `expected_total` guard adds `total` and `expected_total`, the 409 of a second revert
    `reverted_by`."""

    code: str = Field(
        description="Stable, for programs: e.g. `validation_error`, `not_found`, `conflict`, "
        "`in_use`, `unauthorized`, `forbidden`."
    )
    message: str = Field(description="For people; may change between versions.")
    details: list[ErrorDetail] = Field(
        [], description="One entry a problem (every problem of a 422); may be empty."
    )


class ErrorBody(BaseModel):
    """The body of every error answer (4xx and 5xx)."""

    error: ErrorInfo = Field(description="What went wrong.")


class AudienceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.extra = extra or {}
        self.headers = headers


class Unauthorized(AudienceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AudienceError):
    status_code = 403
    code = "forbidden"


class NotFound(AudienceError):
    status_code = 404
    code = "not_found"


class Conflict(AudienceError):
    status_code = 409
    code = "conflict"


class Gone(AudienceError):
    status_code = 410
    code = "gone"


class InUse(Conflict):
    """A rename or delete of something a saved segment or rule refers to."""

    code = "in_use"


class TooLarge(AudienceError):
    status_code = 413
    code = "payload_too_large"


class Invalid(AudienceError):
    status_code = 422
    code = "validation_error"

    @classmethod
    def at(cls, path: str, message: str) -> "Invalid":
        return cls(message, details=[{"path": path, "message": message}])


class QueryTimeout(AudienceError):
    status_code = 503
    code = "query_timeout"


QUERY_CANCELED = "57014"  # PostgreSQL: statement_timeout, or a cancel request
# PostgreSQL: a deadlock (two saves locking the segments or rules each other names) or a
# serialization failure; the transaction was rolled back whole, so a retry is safe.
CONCURRENT = ("40P01", "40001")


# --- a failed job's `error`, as its tenant reads it -------------------------------------

INTERNAL = "internal_error"
JOB_FAILED = "the job stopped on an unexpected error; the service's log has the detail"
# "code: message" as job_failure stores it; an exception's text (what was stored before
# codes) starts with its class name, never with a lower-case code.
_STORED = re.compile(r"([a-z][a-z_]*): (.*)", re.DOTALL)


def job_failure(exc: BaseException) -> str:
    """What a job that failed on `exc` stores as its error: ours as raised (a rule or a
    segment gone since submit: the tenant's to fix), anything else a stable code and a
    generic message. The detail (SQL text, contact data) goes to the server log only."""
    if isinstance(exc, AudienceError):
        return f"{exc.code}: {exc.message}"[:2000]
    return f"{INTERNAL}: {JOB_FAILED}"


def job_error_shown(stored: str | None) -> tuple[str | None, str | None]:
    """(code, message) of a job's stored error for its tenant; an error stored as raw
    exception text reads as the generic internal error."""
    if stored is None:
        return None, None
    found = _STORED.fullmatch(stored)
    if found is None:
        return INTERNAL, JOB_FAILED
    return found.group(1), found.group(2)


def error_body(code: str, message: str, details=None, **extra) -> dict:
    error = {"code": code, "message": message, "details": details or []}
    error.update(extra)
    return {"error": error}


def format_loc(loc: tuple | list) -> str:
    """('body', 'contacts', 3, 'birth_date') -> 'contacts[3].birth_date'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("body",) and not path:
            continue
        elif isinstance(part, str) and (part.startswith(("function-", "~")) or "[" in part):
            # pydantic's names for union members / validators carry no user meaning
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


# Discriminated unions whose tag is `type`: their "no such kind" errors (spec.py, actions).
KIND_MESSAGES = {
    "invalid_selector": "'type' must be one of tag, funnel, mailing, group, segment",
    "invalid_condition": "'type' must be one of tag, funnel, mailing, group, segment",
}


def _names_the_kind(err: dict) -> bool:
    if err.get("type") in ("invalid_selector", "invalid_action"):
        return True
    given = err.get("input")
    return err.get("type") == "invalid_condition" and isinstance(given, dict) and "type" in given


def pydantic_details(errors: list[dict], prefix: str = "") -> list[dict[str, str]]:
    details = []
    seen = set()
    for err in errors:
        path = format_loc(err.get("loc", ()))
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"
        cause = (err.get("ctx") or {}).get("error")
        if getattr(cause, "path", None) is not None and hasattr(cause, "message"):
            path = f"{path}.{cause.path}" if path else cause.path
        message = err.get("msg", "invalid")
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if _names_the_kind(err):  # an unknown kind: the path names the `type` key itself
            path = f"{path}.type" if path else "type"
            message = KIND_MESSAGES.get(err["type"], message)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        details.append({"path": path, "message": message})
    return details


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key"},
    403: {"model": ErrorBody, "description": "A read key, and this request is not a read"},
    404: {"model": ErrorBody, "description": "Not found in this account"},
    422: {
        "model": ErrorBody,
        "description": "Invalid request; details point at the offending part",
    },
}
NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Another one in this account has this name"}
}
IN_USE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "A saved segment or rule uses it (code in_use)"}
}
RENAME_CONFLICTS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "Another one in this account has the new name, or a saved segment or "
        "rule uses the old one (code in_use)",
    }
}
# FastAPI's word for a body that is not UTF-8 (or otherwise unreadable as JSON).
_UNPARSABLE = "There was an error parsing the body"


def _malformed_json(exc: RequestValidationError) -> str | None:
    """A body that is not JSON, said with the line and column where it goes wrong (FastAPI
    gives a character offset, as if it were a path)."""
    for error in exc.errors():
        if error.get("type") != "json_invalid":
            continue
        loc = error.get("loc") or ()
        doc = exc.body if isinstance(exc.body, str) else ""
        pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        line = doc.count("\n", 0, pos) + 1
        column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
        why = (error.get("ctx") or {}).get("error") or "not JSON"
        return f"malformed JSON at line {line}, column {column}: {why}"
    return None


def document_limits(app: FastAPI) -> None:
    """Every operation that takes a body may answer 413 (RequestContext's limit): added to
    the generated document, whatever way the routes were included."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        for operations in schema["paths"].values():
            for operation in operations.values():
                if "requestBody" in operation:
                    operation["responses"].setdefault("413", _TOO_LARGE)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_TOO_LARGE = {
    "description": "The body is over the size limit",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (starlette names only the first
    matching route's)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    @app.exception_handler(AudienceError)
    async def _audience(_request: Request, exc: AudienceError):
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details, **exc.extra),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        malformed = _malformed_json(exc)
        if malformed:
            details = [{"path": "body", "message": malformed}]
            return JSONResponse(error_body("validation_error", malformed, details), status_code=422)
        details = pydantic_details(exc.errors())
        message = details[0]["message"] if details else "invalid request"
        if details and details[0]["path"]:
            message = f"{details[0]['path']}: {message}"
        return JSONResponse(error_body("validation_error", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == _UNPARSABLE:
            message = "the body is not JSON in UTF-8"
            details = [{"path": "body", "message": message}]
            return JSONResponse(error_body("validation_error", message, details), status_code=422)
        codes = {
            401: "unauthorized",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
            status_code=exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError):
        if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:  # the statement timeout
            timeout = QueryTimeout("the query took longer than the statement timeout")
            return await _audience(request, timeout)
        if getattr(exc.orig, "sqlstate", None) in CONCURRENT:
            return await _audience(
                request,
                Conflict(
                    "a concurrent request changed the same data; try again",
                    headers={"Retry-After": "1"},
                ),
            )
        if disconnected(exc):  # a restart or fail-over: worth trying again shortly
            return JSONResponse(
                error_body("unavailable", "the database is unreachable; try again"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        import structlog

        structlog.get_logger("audience").exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)
